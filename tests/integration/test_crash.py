"""Crash safety of the mail path: every message that got a 250 is delivered,
none is lost, and duplicates are at most a few, while qmgr and virtual are
killed with SIGKILL at random moments (master restarts them)."""
import email.parser
import glob
import json
import os
import random
import signal
import smtplib
import threading
import time
import unittest

from postern_test import Instance, daemons_of, main, wait_until

DOMAIN = "example.test"
CONNECTIONS = 6
PER_CONNECTION = 100
KILLS = 15
SEND_PAUSE = 0.08       # mean seconds between two messages on one connection
VICTIMS = ("qmgr", "virtual")


def make_message(subject):
    return ("From: crash@outside.test\r\nTo: alice@%s\r\nSubject: %s\r\n"
            "Message-ID: <%s@outside.test>\r\n\r\nbody of %s\r\n"
            % (DOMAIN, subject, subject, subject)).encode()


def subject_of(path):
    """The Subject header of a delivered file (None if unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8192).split(b"\n\n", 1)[0]
    except OSError:
        return None
    msg = email.parser.BytesHeaderParser().parsebytes(head + b"\n\n")
    return msg["Subject"]


def delivered_subjects(inst):
    """{subject: copies} of what is in alice's Maildir."""
    counts = {}
    for path in glob.glob(inst.path("mail", DOMAIN, "alice", "new", "*")):
        subj = subject_of(path)
        counts[subj] = counts.get(subj, 0) + 1
    return counts


def kill_one_of(inst, names, killed):
    """SIGKILL one random running process among the programs named; (name, pid) goes to killed.
    False when none runs (master is restarting or throttling them)."""
    procs = daemons_of(inst, names)
    running = [n for n in names if procs[n]]
    if not running:
        return False
    name = random.choice(running)
    pid = random.choice(procs[name])
    try:
        os.kill(pid, signal.SIGKILL)
        killed.append((name, pid))
    except ProcessLookupError:
        pass
    return True


def send_messages(inst, prefix, count, pause, accepted, failed, pause_after_failure=0.0):
    """count messages PREFIX-K to alice over one connection at a time, reconnecting after a
    failure; subjects go to accepted (250) or, with the error, to failed."""
    s = None
    for k in range(count):
        subject = "%s-%d" % (prefix, k)
        try:
            if s is None:
                s = smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30)
            s.sendmail("crash@outside.test", ["alice@" + DOMAIN], make_message(subject))
            accepted.append(subject)
            # spread the sending over the kills: deliveries are under way when they come
            time.sleep(random.uniform(0, pause * 2))
        except (smtplib.SMTPException, OSError) as e:
            failed.append((subject, repr(e)))
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
            s = None
            time.sleep(pause_after_failure)
    if s is not None:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.inst = Instance("crash")
        i = self.inst
        # service_throttle_time: a process killed soon after its start counts as a start
        # failure; keep master's back-off short so the run stays bounded
        i.set_main_cf(minimal_backoff_time="1s", maximal_backoff_time="2s",
                      queue_run_delay="1s", service_throttle_time="2s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="pw\n")
        i.start()

    def tearDown(self):
        self.inst.cleanup()

    def victims(self):
        return daemons_of(self.inst, VICTIMS)

    def killer(self, stop, killed):
        """Send SIGKILL to a random qmgr or virtual process, KILLS times."""
        while len(killed) < KILLS and not stop.is_set():
            time.sleep(random.uniform(0.2, 1.0))
            kill_one_of(self.inst, VICTIMS, killed)

    def queue_list(self):
        return json.loads(self.inst.postctl("queue", "list", "--json"))

    def test_no_accepted_message_lost_while_daemons_are_killed(self):
        i = self.inst
        self.assertTrue(wait_until(lambda: all(self.victims().values()), timeout=10),
                        "qmgr/virtual not running: %r" % self.victims())
        accepted, failed, killed = [], [], []
        stop = threading.Event()
        kthread = threading.Thread(target=self.killer, args=(stop, killed))
        kthread.start()
        senders = [threading.Thread(target=send_messages,
                                    args=(i, "crash-%d" % n, PER_CONNECTION, SEND_PAUSE, accepted, failed))
                   for n in range(CONNECTIONS)]
        t0 = time.time()
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        send_time = time.time() - t0
        kthread.join(timeout=30)        # the kills go on after the sending, bounded
        stop.set()
        kthread.join()

        # master restarts what was killed; then the queue drains
        empty = wait_until(lambda: self.queue_list() == [], timeout=60, interval=0.5)
        time.sleep(1)                   # a delivery that was under way when we looked

        counts = delivered_subjects(i)
        lost = [s for s in accepted if s not in counts]
        dups = sum(c - 1 for s, c in counts.items() if c > 1)
        unknown = [s for s in counts if s not in set(accepted)]
        delivered = sum(counts.values())
        corrupt = os.listdir(i.path("queue", "corrupt"))
        log = i.log()
        panics = [l for l in log.splitlines() if "panic:" in l]

        print("\ncrash test: sent %d, accepted %d, refused %d, killed %d (%s), "
              "delivered %d files (%d unique), lost %d, duplicated %d, send time %.1f s"
              % (CONNECTIONS * PER_CONNECTION, len(accepted), len(failed), len(killed),
                 ", ".join("%s=%d" % (n, sum(1 for k in killed if k[0] == n)) for n in VICTIMS),
                 delivered, len(counts), len(lost), dups, send_time))
        if failed:
            print("refused (first 5): %r" % failed[:5])

        tail = log[-6000:]
        self.assertTrue(empty, "queue not empty after 60 s: %r\nlog:\n%s"
                        % (self.queue_list()[:5], tail))
        self.assertEqual(lost, [], "%d accepted messages lost, e.g. %r\nlog:\n%s"
                         % (len(lost), lost[:10], tail))
        self.assertEqual(unknown, [], "delivered but never accepted: %r" % unknown[:10])
        self.assertLessEqual(dups, len(killed), "%d duplicates for %d kills" % (dups, len(killed)))
        self.assertEqual(corrupt, [], "queue files set aside as corrupt: %r" % corrupt)
        self.assertEqual(panics, [], "\n".join(panics))
        self.assertGreater(len(accepted), CONNECTIONS * PER_CONNECTION * 0.9,
                           "too few accepted: %r" % failed[:5])
        self.assertGreaterEqual(len(killed), KILLS // 2)


if __name__ == "__main__":
    main()
