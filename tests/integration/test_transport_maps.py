"""transport_maps entries that qmgr settles itself: error:TEXT bounces the recipient with TEXT
(and its status code when TEXT starts with one), discard: delivers to nowhere. Keys are
tried as Postfix does: full address, domain, then ".parent" domains; an address entry beats the
mailbox route of a local domain. Recipients without an entry route by their domain class (other domains: default_transport, smtp).
A delivery agent that never answers (an LMTP server that accepts and stays silent, under the
agent's own much longer timeouts) is given up after daemon_timeout: deferred, 4.4.2."""
import glob
import re
import smtplib
import socket
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"


def log_result(inst, rcpt):
    """(dsn, status, reason) of the log line for rcpt, or None."""
    m = re.search(r"to=<%s>.*, dsn=([0-9.]+), status=(\w+) \((.*)\)" % re.escape(rcpt), inst.log())
    return m.groups() if m else None


class TransportMapsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("transport")
        i = cls.inst
        tmap = i.path("etc", "transport")
        with open(tmap, "w") as f:
            f.write("bounce.test   error:5.7.1 no mail for this domain\n"
                    "Discard.Test  discard:\n"
                    ".sub.test     error:parent rule\n"
                    "gone@%s       discard:\n" % DOMAIN)
        # No name server answers (port 9 on loopback): outbound mail waits with a DNS failure.
        i.set_main_cf(mynetworks="127.0.0.1/32", transport_maps="texthash:" + tmap,
                      smtp_dns_servers="127.0.0.1:9",
                      minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        i.postctl("user", "add", "gone@" + DOMAIN, "--password-stdin", input="gone-pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def result(self, rcpt):
        return log_result(self.inst, rcpt)

    @staticmethod
    def mailbox(inst, user, marker):
        """Texts of the messages in user's new/ whose header section contains marker."""
        out = []
        for path in glob.glob(inst.path("mail", DOMAIN, user, "new", "*")):
            with open(path, errors="replace") as f:
                text = f.read()
            if marker in text.split("\n\n", 1)[0]:
                out.append(text)
        return out

    def test_entries(self):
        i = self.inst
        rcpts = ["x@bounce.test", "y@discard.test", "z@a.b.sub.test", "gone@" + DOMAIN, "alice@" + DOMAIN]
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("alice@" + DOMAIN, rcpts, b"Subject: routed\r\n\r\nbody\r\n")
        self.assertTrue(wait_until(lambda: all(self.result(r) for r in rcpts), timeout=20), i.log())
        self.assertEqual(self.result("x@bounce.test"), ("5.7.1", "bounced", "no mail for this domain"))
        self.assertEqual(self.result("y@discard.test")[:2], ("2.0.0", "sent"))
        self.assertEqual(self.result("z@a.b.sub.test"), ("5.0.0", "bounced", "parent rule"))
        self.assertEqual(self.result("gone@" + DOMAIN)[:2], ("2.0.0", "sent"))
        self.assertEqual(self.result("alice@" + DOMAIN)[1], "sent")
        # the discarded mailbox got nothing, alice got the message
        self.assertEqual(glob.glob(i.path("mail", DOMAIN, "gone", "new", "*")), [])
        self.assertEqual(len(self.mailbox(i, "alice", "Subject: routed")), 1)
        # and, from MAILER-DAEMON, one bounce listing both bounced recipients
        self.assertTrue(wait_until(lambda: self.mailbox(i, "alice", "Subject: Undelivered Mail"), timeout=15))
        (bounce,) = self.mailbox(i, "alice", "Subject: Undelivered Mail")
        self.assertIn("Final-Recipient: rfc822; x@bounce.test", bounce)
        self.assertIn("Final-Recipient: rfc822; z@a.b.sub.test", bounce)
        # every recipient is final: nothing left in the queue
        self.assertTrue(wait_until(lambda: "Mail queue is empty" in i.postctl("queue", "list"), timeout=15),
                        i.postctl("queue", "list"))

    def test_no_entry_goes_to_smtp(self):
        i = self.inst
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("alice@" + DOMAIN, ["w@other.test"], b"Subject: waits\r\n\r\nbody\r\n")
        self.assertTrue(wait_until(lambda: self.result("w@other.test"), timeout=20), i.log())
        self.assertEqual(self.result("w@other.test")[:2], ("4.4.3", "deferred"))
        self.assertIn("Name service error for name=other.test", self.result("w@other.test")[2])



class DaemonTimeoutTest(unittest.TestCase):
    def setUp(self):
        self.silent = socket.socket()           # accepts, never greets
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(8)
        self.inst = i = Instance("daemon-timeout")
        tmap = i.path("etc", "transport")
        with open(tmap, "w") as f:
            f.write("hang.test lmtp:inet:127.0.0.1:%d\n" % self.silent.getsockname()[1])
        i.set_main_cf(mynetworks="127.0.0.1/32", transport_maps="texthash:" + tmap, daemon_timeout="4s")
        i.start()

    def tearDown(self):
        self.inst.cleanup()
        self.silent.close()

    def test_silent_agent_given_up(self):
        i = self.inst
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["h@hang.test"], b"Subject: hangs\r\n\r\nbody\r\n")
        self.assertTrue(wait_until(lambda: log_result(i, "h@hang.test"), timeout=30),
                        i.log()[-3000:])
        self.assertEqual(log_result(i, "h@hang.test"),
                         ("4.4.2", "deferred", "delivery agent timed out"))
        self.assertIn("no reply within 4 seconds", i.log())

if __name__ == "__main__":
    main()
