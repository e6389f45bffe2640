"""Mailbox quota: postctl user add --quota writes virtual_mailbox_limit_maps, the virtual agent
keeps Maildir++ maildirsize, a message that does not fit is deferred (4.2.2) or, with
virtual_overquota_bounce = yes, bounced (5.2.2) with a DSN to the sender, and imapd's
GETQUOTAROOT reports the usage the agent counted."""
import email
import email.policy
import glob
import imaplib
import json
import os
import re
import smtplib
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"
LIMIT = 20 * 1024


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


class QuotaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("quota")
        i = cls.inst
        i.set_main_cf(mynetworks="127.0.0.1/32", minimal_backoff_time="1s", maximal_backoff_time="2s",
                      queue_run_delay="1s", auth_failure_delay="0",
                      smtpd_recipient_restrictions="reject_unauth_destination, "
                                                   "check_policy_service unix:private/quota-status")
        with open(os.path.join(i.config_dir, "master.cf")) as f:
            master = f.read()
        with open(os.path.join(i.config_dir, "master.cf"), "w") as f:
            f.write(master.replace("#quota-status unix", "quota-status unix"))
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--quota", "20k", "--password-stdin", input="alice-pw\n")
        i.postctl("user", "add", "bob@" + DOMAIN, "--password-stdin", input="bob-pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def send(self, rcpt, tag, size, sender="bob@" + DOMAIN):
        body = ("x" * 76 + "\r\n") * (size // 78)
        msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\n%s" % (sender, rcpt, tag, body)
        # no SIZE parameter: only a mailbox that is full already is refused at RCPT
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo()
            self.assertEqual(s.mail(sender)[0], 250)
            code, text = s.rcpt(rcpt)
            self.assertEqual(code, 250, text)
            self.assertEqual(s.data(msg.encode())[0], 250)

    def mailbox(self, user):
        return glob.glob(self.inst.path("mail", DOMAIN, user, "new", "*"))

    def maildirsize(self, user):
        with open(self.inst.path("mail", DOMAIN, user, "maildirsize")) as f:
            lines = f.read().splitlines()
        used = sum(int(l.split()[0]) for l in lines[1:] if l.strip())
        return lines[0], used

    def queue_reason(self, rcpt):
        for m in json.loads(self.inst.postctl("queue", "list", "--json")):
            for r in m["recipients"]:
                if r["address"] == rcpt and r.get("reason"):
                    return r["reason"]
        return None

    def test_user_added_while_running(self):
        """A quota set while everything runs applies at once (the tables are reopened)."""
        i = self.inst
        i.postctl("user", "add", "carol@" + DOMAIN, "--quota", "1k", "--password-stdin", input="carol-pw\n")
        def refused():
            with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
                s.ehlo()
                s.mail("bob@" + DOMAIN, ["SIZE=5000"])
                return s.rcpt("carol@" + DOMAIN)[0] == 552
        self.assertTrue(wait_until(refused, timeout=15), i.log()[-3000:])
        i.postctl("user", "del", "carol@" + DOMAIN)
        self.assertNotIn("carol@", read(i.path("etc", "virtual_mailbox_limits")))

    def test_quota(self):
        i = self.inst
        self.assertIn("alice@%s 20480" % DOMAIN, read(i.path("etc", "virtual_mailbox_limits")))
        # two 8k messages fit into 20k, the third does not and waits (4.2.2)
        self.send("alice@" + DOMAIN, "fits-1", 8000)
        self.send("alice@" + DOMAIN, "fits-2", 8000)
        self.assertTrue(wait_until(lambda: len(self.mailbox("alice")) == 2, timeout=20), i.log()[-3000:])
        self.send("alice@" + DOMAIN, "too-much", 8000)
        self.assertTrue(wait_until(lambda: "dsn=4.2.2" in i.log(), timeout=20), i.log()[-3000:])
        reason = wait_until(lambda: self.queue_reason("alice@" + DOMAIN), timeout=10)
        self.assertIn("mailbox full", reason or "")
        self.assertEqual(len(self.mailbox("alice")), 2)

        # maildirsize is what imapd reports
        first, used = self.maildirsize("alice")
        self.assertEqual(first, "%dS" % LIMIT)
        on_disk = sum(os.path.getsize(p) for p in self.mailbox("alice"))
        self.assertEqual(used, on_disk)
        m = imaplib.IMAP4("127.0.0.1", i.port_base + 143, timeout=30)
        m.login("alice@" + DOMAIN, "alice-pw")
        typ, data = m.getquotaroot("INBOX")
        self.assertEqual(typ, "OK")
        got = re.search(r"STORAGE (\d+) (\d+)", data[1][0].decode())
        self.assertIsNotNone(got, data)
        self.assertIn(int(got.group(1)), (used // 1024, (used + 1023) // 1024))
        self.assertEqual(int(got.group(2)), LIMIT // 1024)
        # expunging over IMAP makes room: the deferred message gets in on its next try
        m.select("INBOX")
        typ, ids = m.search(None, "ALL")
        m.store(ids[0].split()[0], "+FLAGS", "\\Deleted")
        m.expunge()
        m.logout()
        self.assertTrue(wait_until(lambda: any("too-much" in read(p) for p in self.mailbox("alice")),
                                   timeout=30), i.log()[-3000:])
        first, used = self.maildirsize("alice")
        self.assertEqual(used, sum(os.path.getsize(p) for p in self.mailbox("alice")
                                   + glob.glob(i.path("mail", DOMAIN, "alice", "cur", "*"))))

        # now alice is over quota by the messages' count: smtpd refuses more at RCPT (552 5.2.2)
        first, used = self.maildirsize("alice")
        if used < LIMIT:
            self.send("alice@" + DOMAIN, "fill-up", LIMIT - used - 200)
            self.assertTrue(wait_until(lambda: self.maildirsize("alice")[1] >= LIMIT - 200, timeout=20))
        with smtplib.SMTP("127.0.0.1", i.port_base + 25, timeout=30) as s:
            s.ehlo()
            s.mail("bob@" + DOMAIN, ["SIZE=%d" % 1000])
            code, text = s.rcpt("alice@" + DOMAIN)
            self.assertEqual(code, 552, text)
            self.assertIn(b"5.2.2", text)
            code, text = s.rcpt("bob@" + DOMAIN)            # no quota: accepted
            self.assertEqual(code, 250, text)
            s.rset()
            s.mail("bob@" + DOMAIN)                         # no SIZE: only a full mailbox is refused
            code, text = s.rcpt("alice@" + DOMAIN)
            self.assertEqual(code, 250 if self.maildirsize("alice")[1] < LIMIT else 552, text)

        # with virtual_overquota_bounce = yes the sender gets a 5.2.2 bounce
        i.set_main_cf(virtual_overquota_bounce="yes")
        i.postctl("reload")
        before = len(self.mailbox("bob"))
        self.send("alice@" + DOMAIN, "bounce-me", 9000)
        self.assertTrue(wait_until(lambda: len(self.mailbox("bob")) > before, timeout=30), i.log()[-3000:])
        dsn = None
        for p in self.mailbox("bob"):
            with open(p, "rb") as f:
                msg = email.message_from_bytes(f.read(), policy=email.policy.default)
            if msg.get_content_type() == "multipart/report":
                dsn = msg
        self.assertIsNotNone(dsn)
        self.assertIn("5.2.2", dsn.as_string())
        self.assertEqual(i.crashes(), [])


if __name__ == "__main__":
    main()
