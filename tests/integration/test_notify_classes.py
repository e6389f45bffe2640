"""What the postmaster is told, as Postfix's notify_classes says: with "bounce, delay, 2bounce"
the postmaster (an alias of pm@example.test, reached as postmaster@$myorigin, the default
bounce/delay/2bounce_notice_recipient) gets a headers-only copy of each bounce (even for
NOTIFY=NEVER, as Postfix's copies) and of each delay warning, from the double-bounce address,
and each double bounce; mail from the double-bounce address causes nothing. With the default
("resource, software") the postmaster gets none of these, and a double bounce is dropped with a
log line. An unknown class is an error of postctl check and postctl start naming
notify_classes and its main.cf line. Real SMTP clients, real deliveries into Maildirs."""
import email
import email.policy
import glob
import os
import re
import smtplib
import time
import unittest

from postern_test import Instance, main, wait_until
from test_bounces import bounce_while_killing_qmgr

DOMAIN = "example.test"
HOST = "mx.example.test"                # Instance's --hostname, also $myorigin
SECRET = "BODY-TEXT-%s-must-not-reach-the-postmaster"


def new_instance(name, **params):
    """An instance with a bouncing and a deferring destination and postmaster -> pm@DOMAIN."""
    i = Instance(name)
    tmap = i.path("etc", "transport")
    with open(tmap, "w") as f:
        f.write("bounce.test  error:5.1.1 no such mailbox here\n"
                "slow.test    retry:4.4.1 destination busy\n")
    i.set_main_cf(mynetworks="127.0.0.1/32", transport_maps="texthash:" + tmap,
                  minimal_backoff_time="1s", maximal_backoff_time="1s", queue_run_delay="1s",
                  delay_warning_time="2s", maximal_queue_lifetime="1h", bounce_queue_lifetime="0",
                  service_throttle_time="2s", **params)
    i.postctl("domain", "add", DOMAIN)
    for user in ("alice", "bob", "pm"):
        i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input="pw\n")
    # The bare "postmaster" alias key is Postfix's for $myorigin (postmaster@mx.example.test).
    with open(i.path("etc", "virtual_aliases"), "a") as f:
        f.write("postmaster  pm@%s\n" % DOMAIN)
    i.postctl("map", i.path("etc", "virtual_aliases"))
    i.start()
    return i


def raw_messages(inst, user):
    """(raw bytes, parsed) of every message in user@DOMAIN's Maildir."""
    out = []
    for path in sorted(glob.glob(inst.path("mail", DOMAIN, user, "new", "*"))
                       + glob.glob(inst.path("mail", DOMAIN, user, "cur", "*"))):
        with open(path, "rb") as f:
            raw = f.read()
        out.append((raw, email.message_from_bytes(raw, policy=email.policy.compat32)))
    return out


def with_subject(inst, user, subject_start):
    return [(raw, m) for raw, m in raw_messages(inst, user) if (m["Subject"] or "").startswith(subject_start)]


def about(msg, qid):
    """Is this DSN about queue ID qid (its X-Postern-Queue-ID)?"""
    parts = msg.get_payload()
    return isinstance(parts, list) and len(parts) == 3 and \
        parts[1].get_payload()[0]["X-Postern-Queue-ID"] == qid


def send(inst, sender, rcpt, subject, tag, rcpt_options=()):
    """One message over SMTP with a recognisable body; its queue ID."""
    body = ("Subject: %s\r\nFrom: <%s>\r\nX-Tag: %s\r\n\r\n%s\r\n" % (subject, sender, tag, SECRET % tag)).encode()
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        code, resp = s.mail(sender)
        assert code == 250, (code, resp)
        code, resp = s.rcpt(rcpt, list(rcpt_options))
        assert code == 250, (code, resp)
        code, resp = s.data(body)
        assert code == 250, (code, resp)
    return re.search(rb"queued as ([0-9A-F]{18})", resp).group(1).decode()


class NotifyClassesTest(unittest.TestCase):
    """notify_classes = bounce, delay, 2bounce."""

    @classmethod
    def setUpClass(cls):
        cls.inst = new_instance("notify", notify_classes="bounce, delay, 2bounce")

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def copy_of(self, subject_start, qid):
        i = self.inst
        self.assertTrue(wait_until(lambda: [m for _, m in with_subject(i, "pm", subject_start) if about(m, qid)],
                                   timeout=30), i.log()[-3000:])
        (found,) = [(raw, m) for raw, m in with_subject(i, "pm", subject_start) if about(m, qid)]
        return found

    def assert_headers_only(self, raw, msg, subject, tag):
        parts = msg.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        self.assertIn("Subject: %s" % subject, parts[2].get_payload())
        self.assertIn("X-Tag: %s" % tag, parts[2].get_payload())
        self.assertNotIn((SECRET % tag).encode(), raw)
        # from the double-bounce address, so that its own failure is dropped, never reported
        self.assertEqual(msg["Return-Path"], "<double-bounce@%s>" % HOST)
        self.assertEqual(msg["To"], "<postmaster@%s>" % HOST)
        self.assertEqual(msg["From"], "MAILER-DAEMON@%s (Mail Delivery System)" % HOST)

    def test_bounce_copy(self):
        i = self.inst
        qid = send(i, "alice@" + DOMAIN, "x@bounce.test", "will bounce", "b1")
        raw, copy = self.copy_of("Postmaster Copy: Undelivered Mail", qid)
        self.assert_headers_only(raw, copy, "will bounce", "b1")
        human, status = copy.get_payload()[0].get_payload(), copy.get_payload()[1].get_payload()
        self.assertIn("a message from <alice@%s>" % DOMAIN, human)
        self.assertIn("<x@bounce.test>: no such mailbox here", human)
        self.assertEqual(status[0]["X-Postern-Sender"], "rfc822; alice@" + DOMAIN)
        self.assertEqual(status[1]["Final-Recipient"], "rfc822; x@bounce.test")
        self.assertEqual(status[1]["Action"], "failed")
        self.assertEqual(status[1]["Status"], "5.1.1")
        # the sender's own bounce is unchanged: the whole message comes back to alice
        self.assertTrue(wait_until(lambda: [m for _, m in with_subject(i, "alice", "Undelivered Mail")
                                            if about(m, qid)], timeout=30))
        ((own_raw, own),) = [(r, m) for r, m in with_subject(i, "alice", "Undelivered Mail") if about(m, qid)]
        self.assertEqual(own.get_payload()[2].get_content_type(), "message/rfc822")
        self.assertIn((SECRET % "b1").encode(), own_raw)
        self.assertRegex(i.log(), r"%s: sender non-delivery notification: [0-9A-F]{18}" % qid)
        self.assertRegex(i.log(), r"%s: postmaster non-delivery notification: [0-9A-F]{18}" % qid)
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=20))

    def test_bounce_copy_despite_notify_never(self):
        """NOTIFY=NEVER silences the sender's notice, not the postmaster's copy (Postfix)."""
        i = self.inst
        qid = send(i, "bob@" + DOMAIN, "y@bounce.test", "quiet bounce", "b2", rcpt_options=["NOTIFY=NEVER"])
        raw, copy = self.copy_of("Postmaster Copy: Undelivered Mail", qid)
        self.assert_headers_only(raw, copy, "quiet bounce", "b2")
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=20))
        self.assertNotRegex(i.log(), r"%s: sender non-delivery notification" % qid)
        self.assertEqual([m for _, m in raw_messages(i, "bob") if about(m, qid)], [])

    def test_delay_copy(self):
        i = self.inst
        qid = send(i, "alice@" + DOMAIN, "z@slow.test", "slow one", "d1")
        try:
            raw, copy = self.copy_of("Postmaster Warning: Delayed Mail", qid)
            self.assert_headers_only(raw, copy, "slow one", "d1")
            human, status = copy.get_payload()[0].get_payload(), copy.get_payload()[1].get_payload()
            self.assertIn("could not be delivered for more than 2 second(s)", human)
            self.assertEqual(status[1]["Action"], "delayed")
            self.assertEqual(status[1]["Status"], "4.4.1")
            self.assertTrue(wait_until(lambda: [m for _, m in with_subject(i, "alice", "Delayed Mail")
                                                if about(m, qid)], timeout=30))
            self.assertRegex(i.log(), r"%s: sender delay notification: [0-9A-F]{18}" % qid)
            self.assertRegex(i.log(), r"%s: postmaster delay notification: [0-9A-F]{18}" % qid)
            # one warning, one copy, though the message is tried again and again
            attempts = len(re.findall(r"%s: to=<z@slow.test>.*status=deferred" % qid, i.log()))
            self.assertTrue(wait_until(lambda: len(re.findall(r"%s: to=<z@slow.test>.*status=deferred" % qid,
                                                              i.log())) >= attempts + 2, timeout=20))
            self.assertEqual(len([m for _, m in with_subject(i, "pm", "Postmaster Warning") if about(m, qid)]), 1)
            self.assertEqual(len(re.findall(r"%s: postmaster delay notification" % qid, i.log())), 1)
        finally:
            i.postctl("queue", "delete", qid)

    def test_double_bounce(self):
        """2bounce: a failed null-sender message goes to the postmaster, whole, as today."""
        i = self.inst
        qid = send(i, "", "w@bounce.test", "a bounce that bounces", "n1")
        raw, copy = self.copy_of("Postmaster Copy: Undelivered Mail", qid)
        self.assertEqual(copy["Return-Path"], "<double-bounce@%s>" % HOST)
        self.assertIn("has the null sender", copy.get_payload()[0].get_payload())
        self.assertEqual(copy.get_payload()[1].get_payload()[1]["Final-Recipient"], "rfc822; w@bounce.test")
        self.assertEqual(copy.get_payload()[2].get_payload()[0]["Subject"], "a bounce that bounces")
        self.assertRegex(i.log(), r"%s: postmaster non-delivery notification: [0-9A-F]{18}" % qid)
        self.assertNotIn("%s: double bounce dropped" % qid, i.log())

    def test_postmaster_notices_cause_no_notices(self):
        """Mail from the double-bounce address (what every postmaster notice is) that fails is
        dropped: no sender notice, no copy, no double bounce."""
        i = self.inst
        before = len(raw_messages(i, "pm"))
        qid = send(i, "double-bounce@" + HOST, "v@bounce.test", "a failing notice", "p1")
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=30), i.log()[-3000:])
        self.assertIn("%s: undeliverable postmaster notification discarded" % qid, i.log())
        self.assertNotRegex(i.log(), r"%s: (sender|postmaster) (non-delivery|delay) notification" % qid)
        time.sleep(1)
        self.assertEqual([m for _, m in raw_messages(i, "pm")[before:] if about(m, qid)], [])

    def test_kill_qmgr_while_copying(self):
        """qmgr SIGKILLed while bounces and copies are being made: afterwards every bounce has
        its sender's notice and its postmaster's copy (at least once: a crash may repeat)."""
        i = self.inst
        ids, kills = bounce_while_killing_qmgr(i, "bob@" + DOMAIN, 24, (3, 11, 19))
        self.assertGreater(kills, 0)

        def reported(user, subject):
            return {m.get_payload()[1].get_payload()[0]["X-Postern-Queue-ID"]
                    for _, m in with_subject(i, user, subject)}
        self.assertTrue(wait_until(lambda: set(ids) <= reported("bob", "Undelivered Mail"), timeout=60),
                        "no sender's notice for %s" % sorted(set(ids) - reported("bob", "Undelivered Mail")))
        self.assertTrue(wait_until(lambda: set(ids) <= reported("pm", "Postmaster Copy"), timeout=60),
                        "no postmaster's copy for %s" % sorted(set(ids) - reported("pm", "Postmaster Copy")))


class DefaultClassesTest(unittest.TestCase):
    """notify_classes left at its default, "resource, software": the postmaster hears nothing."""

    @classmethod
    def setUpClass(cls):
        cls.inst = new_instance("notify-default")

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_default(self):
        i = self.inst
        self.assertIn("notify_classes = resource, software", i.postctl("conf", "notify_classes"))
        q_bounce = send(i, "alice@" + DOMAIN, "x@bounce.test", "will bounce", "b1")
        q_slow = send(i, "alice@" + DOMAIN, "z@slow.test", "slow one", "d1")
        q_null = send(i, "", "w@bounce.test", "a bounce that bounces", "n1")
        try:
            # the sender is told as always
            self.assertTrue(wait_until(lambda: [m for _, m in with_subject(i, "alice", "Undelivered Mail")
                                                if about(m, q_bounce)], timeout=30), i.log()[-3000:])
            self.assertTrue(wait_until(lambda: [m for _, m in with_subject(i, "alice", "Delayed Mail")
                                                if about(m, q_slow)], timeout=30), i.log()[-3000:])
            # the double bounce is dropped and logged
            self.assertTrue(wait_until(lambda: "%s: removed" % q_null in i.log(), timeout=30), i.log()[-3000:])
            self.assertIn("%s: double bounce dropped: notify_classes has no 2bounce" % q_null, i.log())
            self.assertTrue(wait_until(lambda: "%s: removed" % q_bounce in i.log(), timeout=30))
            time.sleep(2)
            self.assertEqual(raw_messages(i, "pm"), [])
            self.assertNotRegex(i.log(), r"postmaster (non-delivery|delay) notification")
        finally:
            i.postctl("queue", "delete", q_slow)


class UnknownClassTest(unittest.TestCase):
    """A name notify_classes does not know is a configuration error, with its line."""

    def test_unknown_class(self):
        i = Instance("notify-bad")
        try:
            with open(os.path.join(i.config_dir, "main.cf"), "a") as f:
                f.write("notify_classes = bounce, bounces\n")
            with open(os.path.join(i.config_dir, "main.cf")) as f:
                line = len(f.read().splitlines())
            want = 'main.cf:%d: notify_classes: unknown name "bounces"; expected a list of: bounce, 2bounce, ' \
                   'delay, policy, protocol, resource, software, data' % line
            r = i.postctl_raw("check")
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn(want, r.stdout)
            r = i.postctl_raw("start")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn(want, r.stderr)
            self.assertIsNone(i.master_pid())
        finally:
            i.cleanup()


if __name__ == "__main__":
    main()
