"""Chaos: thousands of messages over many connections while smtpd, qmgr,
virtual and master itself are killed with SIGKILL at random moments (a
bounded number of kills in bounded time). master restarts what dies under it;
a killed master is started again with `postctl start`, as an administrator or
a service manager would. Afterwards: every message that got a 250 is in the
Maildir, none that was refused is, each at most twice (duplicates counted),
the queue drains, nothing is in corrupt/, and no daemon crashed by itself.

test_crash.py covers qmgr and virtual alone with more deliveries under way;
this one adds the front (smtpd) and the supervisor (master).
"""
import os
import random
import signal
import threading
import time
import unittest
import json

from postern_test import Instance, daemons_of, main, wait_until
from test_crash import DOMAIN, delivered_subjects, kill_one_of, send_messages

CONNECTIONS = 10
PER_CONNECTION = 200
KILLS = 24
MASTER_KILLS = 3
SEND_PAUSE = 0.02
VICTIMS = ("smtpd", "qmgr", "virtual")


class ChaosTest(unittest.TestCase):
    def setUp(self):
        self.inst = i = Instance("chaos")
        i.set_main_cf(minimal_backoff_time="1s", maximal_backoff_time="2s",
                      queue_run_delay="1s", service_throttle_time="2s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="pw\n")
        i.start()
        self.restarts = []          # seconds each postctl start took after a master kill

    def tearDown(self):
        self.inst.cleanup()

    def victims(self):
        return daemons_of(self.inst, VICTIMS)

    def restart_master(self):
        """After master's SIGKILL: what it started goes away; postctl start brings it back."""
        i = self.inst
        started = time.time()
        deadline = started + 30
        while time.time() < deadline:
            r = i.postctl_raw("start")
            if r.returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("postctl start failed for 30 s after master was killed: %s %s\n%s"
                                 % (r.stdout, r.stderr, i.log()[-3000:]))
        wait_until(lambda: i.port_open(i.smtp_port), timeout=15)
        self.restarts.append(time.time() - started)

    def killer(self, stop, killed, progress):
        # kills are paced by the messages sent, not by the clock, so that a fast or a slow
        # machine gets the same number of them spread over the whole run
        total = CONNECTIONS * PER_CONNECTION
        moments = sorted(random.sample(range(total // 40, total - total // 40), KILLS + MASTER_KILLS))
        for moment in moments:
            if len(killed) >= KILLS:
                break
            while progress() < moment and not stop.is_set():
                time.sleep(0.01)
            if stop.is_set():
                break
            masters = sum(1 for k in killed if k[0] == "master")
            if masters < MASTER_KILLS and random.random() < 0.15:
                pid = self.inst.master_pid()
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(("master", pid))
                    self.restart_master()
                continue
            for _ in range(40):                 # master may be restarting its children
                if kill_one_of(self.inst, VICTIMS, killed):
                    break
                time.sleep(0.05)

    def queue_list(self):
        r = self.inst.postctl_raw("queue", "list", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def test_kill_everything(self):
        i = self.inst
        self.assertTrue(wait_until(lambda: all(self.victims().values()), timeout=15))
        accepted, failed, killed = [], [], []
        stop = threading.Event()
        kthread = threading.Thread(target=self.killer,
                                   args=(stop, killed, lambda: len(accepted) + len(failed)))
        kthread.start()
        # after a failure, a pause: the connection was refused while master was being restarted
        senders = [threading.Thread(target=send_messages,
                                    args=(i, "chaos-%d" % n, PER_CONNECTION, SEND_PAUSE, accepted, failed, 0.2))
                   for n in range(CONNECTIONS)]
        t0 = time.time()
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        send_time = time.time() - t0
        stop.set()
        kthread.join()
        if not i.master_pid():
            self.restart_master()

        empty = wait_until(lambda: self.queue_list() == [], timeout=60, interval=0.5)
        time.sleep(1)
        counts = delivered_subjects(i)
        accepted_set = set(accepted)
        lost = [s for s in accepted if s not in counts]
        dups = sum(c - 1 for c in counts.values() if c > 1)
        most = max(counts.values()) if counts else 0
        # a message whose 250 was lost with a killed smtpd may be delivered: it was never "refused"
        unknown = [s for s in counts if s not in accepted_set and s not in {f[0] for f in failed}]
        corrupt = os.listdir(i.path("queue", "corrupt"))
        panics = [l for l in i.log().splitlines() if "panic:" in l]
        by_name = {n: sum(1 for k in killed if k[0] == n) for n in VICTIMS + ("master",)}
        print("\nchaos test: sent %d, accepted %d, refused %d, killed %d (%s), delivered %d files "
              "(%d unique), lost %d, duplicated %d (at most %d copies), delivered though refused %d, "
              "master restarts %s s, send time %.1f s"
              % (CONNECTIONS * PER_CONNECTION, len(accepted), len(failed), len(killed),
                 ", ".join("%s=%d" % kv for kv in by_name.items()), sum(counts.values()),
                 len(counts), len(lost), dups, most,
                 sum(1 for s in counts if s not in accepted_set),
                 " ".join("%.1f" % r for r in self.restarts), send_time))
        tail = i.log()[-5000:]
        self.assertTrue(empty, "queue not empty after 60 s: %r\nlog:\n%s" % (self.queue_list(), tail))
        self.assertEqual(lost, [], "%d accepted messages lost, e.g. %r\nlog:\n%s" % (len(lost), lost[:10], tail))
        self.assertEqual(unknown, [], "delivered but never sent: %r" % unknown[:10])
        self.assertLessEqual(most, 2, "a message was delivered more than twice")
        self.assertEqual(corrupt, [], "queue files set aside as corrupt: %r" % corrupt)
        self.assertEqual(panics, [], "\n".join(panics))
        self.assertGreater(len(accepted), CONNECTIONS * PER_CONNECTION * 0.7, failed[:5])
        self.assertGreaterEqual(len(killed), KILLS // 2)


if __name__ == "__main__":
    main()
