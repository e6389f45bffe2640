"""The end of a message's life, told to its sender as RFC 3464 DSNs: a bounce (transport_maps
error:) lands in the local sender's Maildir, from MAILER-DAEMON with the null sender, and is a
well-formed multipart/report (parsed with Python's email package) carrying ENVID, ORCPT and the
original message (RET=FULL, the default) or its headers (RET=HDRS); NOTIFY=NEVER silences it,
NOTIFY=SUCCESS asks for a success report; null-sender mail never bounces to anyone but the
postmaster (a double bounce, with notify_classes = 2bounce: test_notify_classes covers the
default, which drops it), and a double bounce that fails is dropped, not looped. With
`retry:` and short lifetimes: one delay warning, then expiry (5.4.7) and a bounce. qmgr killed
with SIGKILL while bounces are being made: afterwards every bounce exists (at least once).
`postctl queue requeue` sends deferred and held mail through qmgr again at once."""
import email
import email.policy
import glob
import os
import re
import signal
import smtplib
import subprocess
import time
import unittest

from outbound_helpers import FakeServer
from postern_test import Instance, daemons_of, main, wait_until

DOMAIN = "example.test"
HOST = "mx.example.test"                # Instance's --hostname


def maildir_messages(inst, user):
    """Parsed messages in user@DOMAIN's Maildir new/ (and cur/)."""
    out = []
    for path in sorted(glob.glob(inst.path("mail", DOMAIN, user, "new", "*"))
                       + glob.glob(inst.path("mail", DOMAIN, user, "cur", "*"))):
        with open(path, "rb") as f:
            out.append(email.message_from_binary_file(f, policy=email.policy.compat32))
    return out


def dsns(inst, user, subject_start):
    return [m for m in maildir_messages(inst, user) if (m["Subject"] or "").startswith(subject_start)]


def send(inst, sender, rcpts, body, mail_options=(), rcpt_options=()):
    """One message over SMTP; its queue ID (from the 250 reply)."""
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        code, resp = s.mail(sender, list(mail_options))
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r, list(rcpt_options))
            assert code == 250, (code, resp)
        code, resp = s.data(body)
        assert code == 250, (code, resp)
    m = re.search(rb"queued as ([0-9A-F]{18})", resp)
    assert m, resp
    return m.group(1).decode()


def bounce_while_killing_qmgr(inst, sender, count, kill_after):
    """count messages from sender to kK@bounce.test (bounced by the transport), with qmgr
    SIGKILLed after message K for each K in kill_after; returns (queue ids, kills)."""
    ids, kills = [], 0
    with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        for k in range(count):
            s.mail(sender)
            s.rcpt("k%d@bounce.test" % k)
            code, resp = s.data(b"Subject: kill %d\r\n\r\nx\r\n" % k)
            if code != 250:
                raise AssertionError("message %d refused: %d %r" % (k, code, resp))
            ids.append(re.search(rb"queued as ([0-9A-F]{18})", resp).group(1).decode())
            if k in kill_after:
                for pid in daemons_of(inst, ["qmgr"])["qmgr"]:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
    return ids, kills


def report_parts(testcase, msg):
    """(human text, per-message fields, [per-recipient fields], third part) of a DSN."""
    testcase.assertEqual(msg.get_content_type(), "multipart/report")
    testcase.assertEqual(msg.get_param("report-type"), "delivery-status")
    parts = msg.get_payload()
    testcase.assertEqual(len(parts), 3, [p.get_content_type() for p in parts])
    testcase.assertEqual(parts[0].get_content_type(), "text/plain")
    testcase.assertIn(parts[1].get_content_type(), ("message/delivery-status",))
    blocks = parts[1].get_payload()
    testcase.assertGreaterEqual(len(blocks), 2)
    return parts[0].get_payload(), blocks[0], blocks[1:], parts[2]


class BounceTest(unittest.TestCase):
    """Bounces, NOTIFY, null sender, double bounces, kill -9: one instance."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("bounce")
        i = cls.inst
        cls.remote = FakeServer()
        tmap = i.path("etc", "transport")
        with open(tmap, "w") as f:
            f.write("bounce.test  error:5.1.1 no such mailbox here\n"
                    "remote.test  smtp:[127.0.0.1]:%d\n" % cls.remote.port)
        i.set_main_cf(mynetworks="127.0.0.1/32", transport_maps="texthash:" + tmap,
                      minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s",
                      service_throttle_time="2s", notify_classes="2bounce",
                      **{"2bounce_notice_recipient": "postmaster@" + DOMAIN})
        i.postctl("domain", "add", DOMAIN)
        for user in ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "postmaster"):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input="pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.remote.close()

    def wait_removed(self, qid):
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in self.inst.log(), timeout=30),
                        self.inst.log()[-3000:])

    def test_bounce_full_message(self):
        i = self.inst
        body = (b"From: Alice <alice@example.test>\r\nTo: x@bounce.test\r\nSubject: will bounce\r\n"
                b"Message-ID: <bounce-full@example.test>\r\n\r\nthe original body\r\n")
        qid = send(i, "alice@" + DOMAIN, ["x@bounce.test"], body,
                   mail_options=["ENVID=env+2B123"],
                   rcpt_options=["ORCPT=rfc822;orig+2Bx@bounce.test", "NOTIFY=FAILURE,DELAY"])
        self.assertTrue(wait_until(lambda: dsns(i, "alice", "Undelivered Mail"), timeout=30), i.log()[-3000:])
        (dsn,) = dsns(i, "alice", "Undelivered Mail")
        self.assertRegex(i.log(), r"%s: sender non-delivery notification: [0-9A-F]{18}" % qid)
        # from MAILER-DAEMON with the null sender
        self.assertEqual(dsn["Return-Path"], "<>")
        self.assertEqual(dsn["From"], "MAILER-DAEMON@%s (Mail Delivery System)" % HOST)
        self.assertEqual(dsn["To"], "<alice@%s>" % DOMAIN)
        self.assertEqual(dsn["Auto-Submitted"], "auto-replied")
        self.assertIsNotNone(dsn["Date"])
        self.assertIsNotNone(dsn["Message-Id"])
        human, per_msg, per_rcpt, third = report_parts(self, dsn)
        self.assertIn("This is the mail system at host %s." % HOST, human)
        self.assertIn("could not\nbe delivered to one or more recipients", human)
        self.assertIn("<x@bounce.test> (expanded from <orig+x@bounce.test>): no such mailbox here", human)
        self.assertEqual(per_msg["Reporting-MTA"], "dns; " + HOST)
        self.assertEqual(per_msg["X-Postern-Queue-ID"], qid)
        self.assertEqual(per_msg["Original-Envelope-Id"], "env+123")
        self.assertIsNotNone(per_msg["Arrival-Date"])
        self.assertEqual(len(per_rcpt), 1)
        r = per_rcpt[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; x@bounce.test")
        self.assertEqual(r["Original-Recipient"], "rfc822;orig+x@bounce.test")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertEqual(r["Diagnostic-Code"], "X-Postern; no such mailbox here")
        self.assertIsNotNone(r["Last-Attempt-Date"])
        # RET absent: the whole original message
        self.assertEqual(third.get_content_type(), "message/rfc822")
        orig = third.get_payload()[0]
        self.assertEqual(orig["Subject"], "will bounce")
        self.assertEqual(orig["Message-ID"], "<bounce-full@example.test>")
        self.assertIn("the original body", orig.get_payload())
        # the original is gone; the bounce was delivered and is gone too
        self.wait_removed(qid)

    def test_remote_5xx(self):
        """A 550 from a remote SMTP server (through the smtp agent): Remote-MTA and an "smtp;"
        Diagnostic-Code with the server's whole reply, longer than a queue file keeps."""
        i = self.inst
        reply = "550 5.7.1 <no@remote.test>: " + "rejected by policy " * 12 + "end"
        self.remote.rcpt_replies["no@remote.test"] = reply
        qid = send(i, "gina@" + DOMAIN, ["no@remote.test"], b"Subject: to remote\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: dsns(i, "gina", "Undelivered Mail"), timeout=30), i.log()[-3000:])
        (dsn,) = dsns(i, "gina", "Undelivered Mail")
        human, per_msg, per_rcpt, _ = report_parts(self, dsn)
        self.assertEqual(per_msg["X-Postern-Queue-ID"], qid)
        r = per_rcpt[0]
        self.assertEqual(r["Status"], "5.7.1")
        self.assertEqual(r["Remote-MTA"], "dns; 127.0.0.1")
        self.assertEqual(r["Diagnostic-Code"], "smtp; " + reply)
        self.assertIn("said: 550 5.7.1", human)
        self.assertIn("end (in reply to RCPT TO command)", human.replace("\n    ", " "))

    def test_bounce_headers_only(self):
        i = self.inst
        body = b"Subject: headers only\r\nX-Mark: hdrs\r\n\r\nsecret body text\r\n"
        send(i, "bob@" + DOMAIN, ["y@bounce.test"], body, mail_options=["RET=HDRS"])
        self.assertTrue(wait_until(lambda: dsns(i, "bob", "Undelivered Mail"), timeout=30), i.log()[-3000:])
        (dsn,) = dsns(i, "bob", "Undelivered Mail")
        _, per_msg, per_rcpt, third = report_parts(self, dsn)
        self.assertIsNone(per_msg["Original-Envelope-Id"])
        self.assertIsNone(per_rcpt[0]["Original-Recipient"])
        self.assertEqual(third.get_content_type(), "text/rfc822-headers")
        text = third.get_payload()
        self.assertIn("Subject: headers only", text)
        self.assertIn("X-Mark: hdrs", text)
        self.assertNotIn("secret body text", text)

    def test_large_original_returns_headers_only(self):
        """Above bounce_size_limit (50000) only the headers come back, whatever RET says."""
        i = self.inst
        body = b"Subject: big one\r\n\r\n" + (b"x" * 998 + b"\r\n") * 60
        send(i, "frank@" + DOMAIN, ["big@bounce.test"], body, mail_options=["RET=FULL"])
        self.assertTrue(wait_until(lambda: dsns(i, "frank", "Undelivered Mail"), timeout=30), i.log()[-3000:])
        (dsn,) = dsns(i, "frank", "Undelivered Mail")
        _, _, _, third = report_parts(self, dsn)
        self.assertEqual(third.get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: big one", third.get_payload())
        self.assertLess(len(dsn.as_string()), 10000)

    def test_smtputf8_original_returned_as_message_global(self):
        i = self.inst
        body = "Subject: Grüße\r\nFrom: erin@example.test\r\n\r\nÄrger\r\n".encode()
        qid = send(i, "erin@" + DOMAIN, ["u@bounce.test"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertTrue(wait_until(lambda: dsns(i, "erin", "Undelivered Mail"), timeout=30), i.log()[-3000:])
        (dsn,) = dsns(i, "erin", "Undelivered Mail")
        self.assertEqual(dsn["Content-Transfer-Encoding"], "8bit")
        parts = dsn.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/global-delivery-status", "message/global"])
        raw = b""
        for path in glob.glob(i.path("mail", DOMAIN, "erin", "new", "*")):
            with open(path, "rb") as f:
                raw += f.read()
        third = raw[raw.index(b"Content-Type: message/global\n"):]
        self.assertIn("Subject: Grüße".encode(), third)
        self.assertIn("Ärger".encode(), third)
        self.assertIn("X-Postern-Queue-ID: %s" % qid, parts[1].as_string())

    def test_notify_never_and_success(self):
        i = self.inst
        q1 = send(i, "carol@" + DOMAIN, ["z@bounce.test"], b"Subject: never\r\n\r\nx\r\n",
                  rcpt_options=["NOTIFY=NEVER"])
        q2 = send(i, "carol@" + DOMAIN, ["bob@" + DOMAIN], b"Subject: tell me\r\n\r\nx\r\n",
                  rcpt_options=["NOTIFY=SUCCESS"])
        self.assertTrue(wait_until(lambda: dsns(i, "carol", "Successful Mail Delivery Report"), timeout=30),
                        i.log()[-3000:])
        self.wait_removed(q1)
        self.wait_removed(q2)
        (dsn,) = dsns(i, "carol", "Successful Mail Delivery Report")
        self.assertRegex(i.log(), r"%s: sender delivery status notification: " % q2)
        human, per_msg, per_rcpt, third = report_parts(self, dsn)
        self.assertIn("successfully delivered", human)
        self.assertEqual(per_msg["X-Postern-Queue-ID"], q2)
        self.assertEqual(per_rcpt[0]["Final-Recipient"], "rfc822; bob@" + DOMAIN)
        self.assertEqual(per_rcpt[0]["Action"], "delivered")
        self.assertTrue(per_rcpt[0]["Status"].startswith("2."), per_rcpt[0]["Status"])
        self.assertEqual(third.get_content_type(), "text/rfc822-headers")
        # NOTIFY=NEVER: bounced, but no notification of any kind
        self.assertRegex(i.log(), r"%s: to=<z@bounce.test>.*status=bounced" % q1)
        self.assertNotRegex(i.log(), r"%s: sender non-delivery notification" % q1)
        self.assertEqual(dsns(i, "carol", "Undelivered Mail"), [])
        # the default NOTIFY never sends a success report
        self.assertEqual(len(dsns(i, "carol", "Successful")), 1)

    def test_null_sender_and_double_bounce(self):
        i = self.inst
        before = len(dsns(i, "postmaster", "Postmaster Copy"))
        q1 = send(i, "", ["w@bounce.test"], b"Subject: a bounce that bounces\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: len(dsns(i, "postmaster", "Postmaster Copy")) > before, timeout=30),
                        i.log()[-3000:])
        self.wait_removed(q1)
        self.assertRegex(i.log(), r"%s: postmaster non-delivery notification: " % q1)
        self.assertNotRegex(i.log(), r"%s: sender non-delivery notification" % q1)
        copy = dsns(i, "postmaster", "Postmaster Copy")[-1]
        self.assertEqual(copy["Return-Path"], "<double-bounce@%s>" % HOST)
        _, per_msg, per_rcpt, third = report_parts(self, copy)
        self.assertEqual(per_msg["X-Postern-Queue-ID"], q1)
        self.assertEqual(per_rcpt[0]["Final-Recipient"], "rfc822; w@bounce.test")
        self.assertEqual(third.get_payload()[0]["Subject"], "a bounce that bounces")
        # a failing postmaster notification (its sender is the double-bounce address) is dropped
        q2 = send(i, "double-bounce@" + HOST, ["v@bounce.test"], b"Subject: dropped\r\n\r\nx\r\n")
        self.wait_removed(q2)
        self.assertIn("%s: undeliverable postmaster notification discarded" % q2, i.log())
        time.sleep(1)
        self.assertEqual(len(dsns(i, "postmaster", "Postmaster Copy")), before + 1)

    def test_kill_qmgr_while_bouncing(self):
        i = self.inst
        ids, kills = bounce_while_killing_qmgr(i, "dave@" + DOMAIN, 30, (5, 15, 25))
        self.assertGreater(kills, 0)

        def reported():
            return {m.get_payload()[1].get_payload()[0]["X-Postern-Queue-ID"]
                    for m in dsns(i, "dave", "Undelivered Mail")}
        self.assertTrue(wait_until(lambda: set(ids) <= reported(), timeout=60),
                        "missing bounces for %s" % sorted(set(ids) - reported()))
        self.assertTrue(wait_until(lambda: "Mail queue is empty" in i.postctl("queue", "list"), timeout=30),
                        i.postctl("queue", "list"))


class QueueLifetimeTest(unittest.TestCase):
    """retry: keeps mail deferred: one delay warning, then expiry and a bounce; a bounce
    that cannot be delivered to a postmaster that cannot be reached is dropped."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("lifetime")
        i = cls.inst
        tmap = i.path("etc", "transport")
        with open(tmap, "w") as f:
            f.write("slow.test    retry:4.4.1 destination busy\n"
                    "bounce.test  error:5.1.1 no such mailbox here\n")
        i.set_main_cf(mynetworks="127.0.0.1/32", transport_maps="texthash:" + tmap,
                      minimal_backoff_time="1s", maximal_backoff_time="1s", queue_run_delay="1s",
                      delay_warning_time="2s", maximal_queue_lifetime="8s", bounce_queue_lifetime="0",
                      notify_classes="2bounce", **{"2bounce_notice_recipient": "pm@bounce.test"})
        i.postctl("domain", "add", DOMAIN)
        for user in ("alice", "bob", "carol", "dave"):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input="pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_each_recipient_reported_once(self):
        """One recipient bounces at once, the other waits: the first bounce names only the
        first, the warning and the expiry bounce only the second, however often it was tried."""
        i = self.inst
        qid = send(i, "carol@" + DOMAIN, ["now@bounce.test", "later@slow.test"], b"Subject: split\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=40), i.log()[-3000:])
        self.assertTrue(wait_until(lambda: len(dsns(i, "carol", "Undelivered Mail")) == 2, timeout=20),
                        i.log()[-3000:])
        time.sleep(1)
        self.assertEqual(len(dsns(i, "carol", "Undelivered Mail")), 2)
        self.assertEqual(len(dsns(i, "carol", "Delayed Mail")), 1)
        self.assertGreaterEqual(len(re.findall(r"%s: to=<later@slow.test>.*status=deferred" % qid, i.log())), 2)
        reported = []
        for m in dsns(i, "carol", "Undelivered Mail"):
            _, per_msg, per_rcpt, _ = report_parts(self, m)
            self.assertEqual(per_msg["X-Postern-Queue-ID"], qid)
            reported.append([(r["Final-Recipient"], r["Status"]) for r in per_rcpt])
        self.assertCountEqual(reported, [[("rfc822; now@bounce.test", "5.1.1")],
                                         [("rfc822; later@slow.test", "5.4.7")]])
        _, _, per_rcpt, _ = report_parts(self, dsns(i, "carol", "Delayed Mail")[0])
        self.assertEqual([r["Final-Recipient"] for r in per_rcpt], ["rfc822; later@slow.test"])

    def test_delay_warning_then_expiry(self):
        i = self.inst
        qid = send(i, "alice@" + DOMAIN, ["x@slow.test"], b"Subject: slow one\r\n\r\nbody\r\n",
                   mail_options=["ENVID=slow-1"])
        self.assertTrue(wait_until(lambda: dsns(i, "alice", "Delayed Mail"), timeout=30), i.log()[-3000:])
        self.assertTrue(wait_until(lambda: dsns(i, "alice", "Undelivered Mail"), timeout=40), i.log()[-3000:])
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=20))
        # exactly one warning, though the message was tried several times after it was due
        self.assertEqual(len(dsns(i, "alice", "Delayed Mail")), 1)
        self.assertEqual(len(re.findall(r"%s: sender delay notification" % qid, i.log())), 1)
        self.assertIn("%s: from=<alice@%s>, status=expired, returned to sender" % (qid, DOMAIN), i.log())

        (warn,) = dsns(i, "alice", "Delayed Mail")
        human, per_msg, per_rcpt, third = report_parts(self, warn)
        self.assertIn("THIS IS A WARNING ONLY", human)
        self.assertIn("It will be retried until it is 8 second(s) old.", human)
        self.assertEqual(per_msg["Original-Envelope-Id"], "slow-1")
        self.assertEqual(per_rcpt[0]["Action"], "delayed")
        self.assertEqual(per_rcpt[0]["Status"], "4.4.1")
        self.assertEqual(per_rcpt[0]["Diagnostic-Code"], "X-Postern; destination busy")
        self.assertIsNotNone(per_rcpt[0]["Will-Retry-Until"])
        self.assertEqual(third.get_content_type(), "text/rfc822-headers")

        (bounce,) = dsns(i, "alice", "Undelivered Mail")
        _, _, per_rcpt, third = report_parts(self, bounce)
        self.assertEqual(per_rcpt[0]["Action"], "failed")
        self.assertEqual(per_rcpt[0]["Status"], "5.4.7")
        self.assertIn("message expired", per_rcpt[0]["Diagnostic-Code"])
        self.assertIn("4.4.1 destination busy", per_rcpt[0]["Diagnostic-Code"])
        self.assertEqual(third.get_payload()[0]["Subject"], "slow one")

    @unittest.skipUnless(os.geteuid() == 0, "needs root for chattr +i")
    def test_bounce_that_cannot_be_queued_is_retried(self):
        """incoming/ made immutable when the message expires: the bounce cannot be written, so the
        message stays queued (not removed, nothing lost) and the bounce goes once it can be."""
        i = self.inst
        incoming = i.path("queue", "incoming")
        qid = send(i, "dave@" + DOMAIN, ["x@slow.test"], b"Subject: blocked\r\n\r\nx\r\n",
                   rcpt_options=["NOTIFY=FAILURE"])
        self.assertTrue(wait_until(lambda: os.path.exists(i.path("queue", "deferred", qid)), timeout=20))
        if subprocess.run(["chattr", "+i", incoming], capture_output=True).returncode != 0:
            self.skipTest("chattr +i not supported here")
        try:
            self.assertTrue(wait_until(lambda: "%s: cannot queue a delivery status notification" % qid in i.log(),
                                       timeout=30), i.log()[-3000:])
            time.sleep(2)
            self.assertNotIn("%s: removed" % qid, i.log())
            self.assertTrue(any(os.path.exists(i.path("queue", q, qid)) for q in ("deferred", "active")))
        finally:
            subprocess.run(["chattr", "-i", incoming], check=True)
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=30), i.log()[-3000:])
        self.assertRegex(i.log(), r"%s: sender non-delivery notification: " % qid)
        self.assertTrue(wait_until(lambda: dsns(i, "dave", "Undelivered Mail"), timeout=20))
        self.assertEqual(len(dsns(i, "dave", "Undelivered Mail")), 1)

    def test_notify_never_no_warning(self):
        i = self.inst
        qid = send(i, "bob@" + DOMAIN, ["y@slow.test"], b"Subject: quiet\r\n\r\nbody\r\n",
                   rcpt_options=["NOTIFY=NEVER"])
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=40), i.log()[-3000:])
        self.assertIn("%s: from=<bob@%s>, status=expired" % (qid, DOMAIN), i.log())
        self.assertNotRegex(i.log(), r"%s: sender (delay|non-delivery) notification" % qid)
        self.assertEqual(maildir_messages(i, "bob"), [])

    def test_null_sender_one_attempt_and_no_loop(self):
        i = self.inst
        # bounce_queue_lifetime = 0: a null-sender message gets one attempt
        qid = send(i, "", ["z@slow.test"], b"Subject: null sender\r\n\r\nbody\r\n")
        self.assertTrue(wait_until(lambda: "%s: removed" % qid in i.log(), timeout=30), i.log()[-3000:])
        self.assertIn("%s: from=<>, status=expired" % qid, i.log())
        m = re.search(r"%s: postmaster non-delivery notification: ([0-9A-F]{18})" % qid, i.log())
        self.assertTrue(m, i.log()[-3000:])
        # the postmaster (pm@bounce.test) cannot be reached either: dropped, never looped
        copy = m.group(1)
        self.assertTrue(wait_until(lambda: "%s: removed" % copy in i.log(), timeout=30), i.log()[-3000:])
        self.assertIn("%s: undeliverable postmaster notification discarded" % copy, i.log())
        self.assertNotRegex(i.log(), r"%s: (postmaster|sender) non-delivery notification" % copy)


class RequeueTest(unittest.TestCase):
    """postctl queue requeue ID...|ALL (postsuper -r): long back-off, so only requeue brings a
    deferred message back before its time."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("requeue")
        i = cls.inst
        tmap = i.path("etc", "transport")
        with open(tmap, "w") as f:
            f.write("later.test   retry:4.4.1 try later\n"
                    "bounce.test  error:5.1.1 no such mailbox here\n")
        i.set_main_cf(mynetworks="127.0.0.1/32", transport_maps="texthash:" + tmap,
                      minimal_backoff_time="1h", maximal_backoff_time="2h", queue_run_delay="1h")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def attempts(self, qid):
        return len(re.findall(r"%s: from=<.*\(queue active\)" % qid, self.inst.log()))

    def deferred(self, qid):
        return os.path.exists(self.inst.path("queue", "deferred", qid))

    def test_show_notified(self):
        """postctl queue show tells which recipients' senders were told already."""
        i = self.inst
        qid = send(i, "alice@" + DOMAIN, ["gone@bounce.test", "wait@later.test"], b"Subject: s\r\n\r\nx\r\n",
                   rcpt_options=["NOTIFY=FAILURE,DELAY"])
        self.assertTrue(wait_until(lambda: self.deferred(qid), timeout=20), i.log()[-2000:])
        self.assertRegex(i.log(), r"%s: sender non-delivery notification: " % qid)
        show = i.postctl("queue", "show", qid)
        self.assertRegex(show, r"recipient: gone@bounce\.test \(bounced\): 5\.1\.1 no such mailbox here\n"
                               r"  notify: FAILURE,DELAY\n  sender_notified: yes\n")
        self.assertRegex(show, r"recipient: wait@later\.test \(deferred\): 4\.4\.1 try later\n"
                               r"  notify: FAILURE,DELAY\n(?!  sender_notified)")
        self.assertNotIn("delay_warning", show)
        i.postctl("queue", "delete", qid)

    def test_requeue(self):
        i = self.inst
        q1 = send(i, "alice@" + DOMAIN, ["a@later.test"], b"Subject: r1\r\n\r\nx\r\n")
        q2 = send(i, "alice@" + DOMAIN, ["b@later.test"], b"Subject: r2\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: self.deferred(q1) and self.deferred(q2), timeout=20), i.log()[-2000:])
        self.assertEqual((self.attempts(q1), self.attempts(q2)), (1, 1))
        self.assertRegex(i.postctl("queue", "show", q1), r"recipient: a@later\.test \(deferred\): 4\.4\.1 try later")

        out = i.postctl("queue", "requeue", q1)
        self.assertIn("Requeued: 1 message", out)
        self.assertTrue(wait_until(lambda: self.attempts(q1) == 2 and self.deferred(q1), timeout=20),
                        i.log()[-2000:])
        self.assertEqual(self.attempts(q2), 1)
        show = i.postctl("queue", "show", q1)
        self.assertRegex(show, r"attempts: 2")

        # a held message is released by requeue; ALL takes every deferred and held one
        i.postctl("queue", "hold", q2)
        self.assertTrue(os.path.exists(i.path("queue", "hold", q2)))
        out = i.postctl("queue", "requeue", "ALL")
        self.assertIn("Requeued: 2 messages", out)
        self.assertTrue(wait_until(lambda: self.attempts(q1) == 3 and self.attempts(q2) == 2
                                   and self.deferred(q1) and self.deferred(q2), timeout=20), i.log()[-2000:])
        self.assertFalse(os.path.exists(i.path("queue", "hold", q2)))

        # usage and unknown IDs
        self.assertEqual(i.postctl_raw("queue", "requeue").returncode, 2)
        self.assertEqual(i.postctl_raw("queue", "requeue", "../etc").returncode, 2)
        r = i.postctl_raw("queue", "requeue", "0" * 18)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such message", r.stderr)


if __name__ == "__main__":
    main()
