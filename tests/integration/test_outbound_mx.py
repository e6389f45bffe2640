"""Outbound mail between instances, and an smtp agent killed in the middle of a run.

Backup MX: a primary instance on 127.0.0.1 holds the mailbox domain primary.test; a backup
instance on 127.0.0.2 has primary.test in relay_domains (`postctl domain add --relay`) and
finds the primary through its MX record (a dnsmasq started here; the backup itself is the
second MX). While the primary is down
the backup accepts the mail and keeps it queued (connection refused: deferred, 4.4.1); once
the primary is up, `postctl queue flush` on the backup forwards it, and it lands in the
user's Maildir on the primary.

kill -9: an instance relays 30 messages to a slow test server; its smtp agents are killed
with SIGKILL while deliveries are in flight. master restarts them, qmgr defers what was
lost and retries, and in the end every recipient has reached the server (a repeat is
allowed, a loss is not) and the queue is empty.

virtual_transport = lmtp:unix:PATH: mailboxes go to an external LMTP server. A blast to a
destination limited to one connection does not hold up a message to another destination.
"""
import glob
import os
import signal
import smtplib
import socket
import time
import unittest

from outbound_helpers import Dnsmasq, FakeServer
from postern_test import Instance, children_of, cmdline, main, wait_until


def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1) as s:
            return bool(s.recv(512))
    except OSError:
        return False


class BackupMxTest(unittest.TestCase):
    def setUp(self):
        self.primary = Instance("mx-primary")
        self.backup = Instance("mx-backup")
        p, b = self.primary, self.backup
        # The backup is the domain's second MX: it must not treat itself as the last hop.
        self.dns = Dnsmasq(["--local=/test/", "--mx-host=primary.test,mx1.primary.test,10",
                            "--mx-host=primary.test,mx2.primary.test,20",
                            "--host-record=mx1.primary.test,127.0.0.1",
                            "--host-record=mx2.primary.test,127.0.0.2"])
        p.set_main_cf(myhostname="mx1.primary.test")
        p.postctl("domain", "add", "primary.test")
        p.postctl("user", "add", "bob@primary.test", "--password-stdin", input="bob-pw\n")
        tmap = b.path("etc", "transport")
        with open(tmap, "w") as f:
            # The MX lookup of primary.test, with the primary's test port instead of 25.
            f.write("primary.test smtp:primary.test:%d\n" % p.smtp_port)
        b.set_main_cf(myhostname="backup.example.test", inet_interfaces="127.0.0.2",
                      transport_maps="texthash:" + tmap, smtp_dns_servers="127.0.0.1:%d" % self.dns.port,
                      minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s")
        b.postctl("domain", "add", "primary.test", "--relay")
        with open(os.path.join(b.config_dir, "master.cf"), "a") as f:
            # the backup also answers on the primary's port, as a real MX pair shares port 25
            f.write("127.0.0.2:%d inet n - y - - smtpd\n" % p.smtp_port)
        b.postctl("start")
        self.assertTrue(wait_until(lambda: port_open("127.0.0.2", b.smtp_port)), b.log())

    def tearDown(self):
        try:
            self.backup.cleanup()
        finally:
            self.primary.cleanup()
            self.dns.close()

    def test_backup_holds_then_forwards(self):
        p, b = self.primary, self.backup
        with smtplib.SMTP("127.0.0.2", b.smtp_port, timeout=30) as s:
            s.sendmail("someone@elsewhere.test", ["bob@primary.test"],
                       b"Subject: via backup\r\n\r\nheld while the primary is down\r\n")
        self.assertTrue(wait_until(lambda: "status=deferred" in b.log(), timeout=20), b.log())
        self.assertIn("connect to mx1.primary.test[127.0.0.1]:%d" % p.smtp_port, b.log())
        # it reached itself as mx2 (its own greeting) and kept the mail: no loop bounce
        self.assertNotIn("loops back to myself", b.log())
        self.assertNotIn("status=bounced", b.log())
        self.assertIn("bob@primary.test", b.postctl("queue", "list"))
        p.start()
        b.postctl("queue", "flush")
        maildir = p.path("mail", "primary.test", "bob", "new", "*")
        self.assertTrue(wait_until(lambda: glob.glob(maildir), timeout=30), b.log() + p.log())
        with open(glob.glob(maildir)[0], "rb") as f:
            data = f.read()
        self.assertIn(b"held while the primary is down", data)
        self.assertIn(b"by backup.example.test", data)
        self.assertIn("relay=mx1.primary.test[127.0.0.1]:%d" % p.smtp_port, b.log())
        self.assertTrue(wait_until(lambda: "Mail queue is empty" in b.postctl("queue", "list"), timeout=15))


class KillAgentTest(unittest.TestCase):
    def setUp(self):
        self.sink = FakeServer()
        self.sink.dot_delay = 0.2
        self.inst = Instance("kill-smtp")
        self.inst.set_main_cf(relayhost="[127.0.0.1]:%d" % self.sink.port, minimal_backoff_time="1s",
                              maximal_backoff_time="2s", queue_run_delay="1s")
        self.inst.start()

    def tearDown(self):
        try:
            self.inst.cleanup()
        finally:
            self.sink.close()

    def smtp_agents(self):
        return [pid for pid in children_of(self.inst.master_pid())
                if cmdline(pid) and os.path.basename(cmdline(pid)[0]) == "smtp"]

    def test_kill_during_run(self):
        i = self.inst
        rcpts = ["user%d@far.test" % n for n in range(30)]
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            for r in rcpts:
                s.sendmail("sender@example.test", [r], b"Subject: kill test\r\n\r\nbody\r\n")
        self.assertTrue(wait_until(lambda: len(self.sink.messages) >= 3, timeout=20), i.log())
        for _ in range(2):
            # master restarts killed agents (after a pause when they die young)
            agents = wait_until(self.smtp_agents, timeout=20)
            self.assertTrue(agents, "no smtp agent running")
            for pid in agents:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
        ok = wait_until(lambda: set(rcpts) <= set(self.sink.rcpts())
                        and "Mail queue is empty" in i.postctl("queue", "list"), timeout=60)
        self.assertTrue(ok, "missing: %s\n%s" % (sorted(set(rcpts) - set(self.sink.rcpts())), i.log()[-4000:]))


class VirtualTransportLmtpTest(unittest.TestCase):
    """virtual_transport = lmtp:unix:PATH: mailboxes are handed to an external LMTP server
    (as to Dovecot's), the mailbox check still ours (unknown users never reach it)."""

    def setUp(self):
        self.inst = i = Instance("vt-lmtp")
        os.makedirs(i.path("queue", "private"), exist_ok=True)
        sock = i.path("queue", "private", "ext-lmtp")
        self.lmtp = FakeServer(lmtp=True, path=sock)
        os.chmod(sock, 0o666)
        i.set_main_cf(virtual_transport="lmtp:unix:private/ext-lmtp")
        i.postctl("domain", "add", "box.test")
        i.postctl("user", "add", "carol@box.test", "--password-stdin", input="carol-pw\n")
        i.start()

    def tearDown(self):
        try:
            self.inst.cleanup()
        finally:
            self.lmtp.close()

    def test_mailbox_to_lmtp(self):
        i = self.inst
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("x@elsewhere.test", ["carol@box.test"], b"Subject: to lmtp\r\n\r\nhi\r\n")
        self.assertTrue(wait_until(lambda: "carol@box.test" in self.lmtp.rcpts(), timeout=20), i.log())
        self.assertIn("to=<carol@box.test>, relay=private/ext-lmtp", i.log())
        self.assertEqual(glob.glob(i.path("mail", "box.test", "carol", "new", "*")), [])
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.ehlo("c.test")
            s.mail("x@elsewhere.test")
            code, _ = s.rcpt("nobody@box.test")
        self.assertEqual(code, 550)


class FairnessTest(unittest.TestCase):
    """A blast to one slow destination, limited to one connection at a time
    (smtp_destination_concurrency_limit = 1), does not hold up a single message to another
    destination queued after it."""

    def setUp(self):
        self.slow = FakeServer()
        self.slow.dot_delay = 0.5
        self.quick = FakeServer()
        self.inst = i = Instance("fair")
        tmap = i.path("etc", "transport")
        with open(tmap, "w") as f:
            f.write("slow.test smtp:[127.0.0.1]:%d\nquick.test smtp:[127.0.0.1]:%d\n"
                    % (self.slow.port, self.quick.port))
        i.set_main_cf(transport_maps="texthash:" + tmap, smtp_destination_concurrency_limit="1",
                      smtp_connection_cache_time_limit="0")
        i.start()

    def tearDown(self):
        try:
            self.inst.cleanup()
        finally:
            self.slow.close()
            self.quick.close()

    def test_single_message_not_behind_blast(self):
        i = self.inst
        blast = ["list%d@slow.test" % n for n in range(12)]
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            for r in blast:
                s.sendmail("list@example.test", [r], b"Subject: blast\r\n\r\nx\r\n")
            s.sendmail("me@example.test", ["you@quick.test"], b"Subject: single\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: self.quick.rcpts(), timeout=30), i.log())
        # the single message went through while the blast was still being worked off
        self.assertLess(len(self.slow.messages), len(blast))
        self.assertTrue(wait_until(lambda: len(self.slow.messages) == len(blast), timeout=60), i.log())
        self.assertEqual(self.slow.max_active, 1)


if __name__ == "__main__":
    main()
