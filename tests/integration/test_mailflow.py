"""Mail flows end to end: SMTP in, queue, qmgr, virtual, Maildir; the admin
commands that set it up; recipient checks; crash-free restarts."""
import concurrent.futures
import email
import glob
import json
import os
import smtplib
import socket
import time
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"


def maildir_files(inst, user, domain=DOMAIN):
    return sorted(glob.glob(inst.path("mail", domain, user, "new", "*")))


def read_message(path):
    with open(path, "rb") as f:
        return f.read()


def make_message(subject, body=b"Hello.\n", sender="sender@outside.test", to="alice@example.test"):
    text = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@outside.test>\r\n\r\n"
            % (sender, to, subject, subject)).encode() + body.replace(b"\n", b"\r\n")
    return text


class MailFlowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("flow")
        i = cls.inst
        # 127.0.0.2 is outside: the relay tests connect from there
        i.set_main_cf(mynetworks="127.0.0.1/32", minimal_backoff_time="1s",
                      maximal_backoff_time="2s", queue_run_delay="1s",
                      message_size_limit="200000",
                      smtp_dns_servers="127.0.0.1:9")   # no name server: foreign mail waits
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-secret\n")
        i.postctl("user", "add", "bob@" + DOMAIN, "--password-stdin", input="bob-secret\n")
        i.postctl("alias", "add", "postmaster@" + DOMAIN, "alice@" + DOMAIN)
        i.postctl("alias", "add", "team@" + DOMAIN, "alice@" + DOMAIN, "bob@" + DOMAIN)
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def send(self, rcpts, msg, sender="sender@outside.test", source=None):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30,
                          source_address=(source, 0) if source else None) as s:
            return s.sendmail(sender, rcpts, msg)

    def wait_delivered(self, user, count, timeout=20):
        ok = wait_until(lambda: len(maildir_files(self.inst, user)) >= count, timeout=timeout)
        self.assertTrue(ok, "%s has %d messages, expected %d; log:\n%s" % (
            user, len(maildir_files(self.inst, user)), count, self.inst.log()[-4000:]))

    def test_admin_listings(self):
        i = self.inst
        domains = json.loads(i.postctl("domain", "list", "--json"))
        self.assertIn({"domain": DOMAIN, "class": "mailbox"}, domains)
        users = json.loads(i.postctl("user", "list", "--json"))
        alice = [u for u in users if u["address"] == "alice@" + DOMAIN][0]
        self.assertEqual(alice["mailbox"], DOMAIN + "/alice/")
        self.assertTrue(alice["password"])
        aliases = json.loads(i.postctl("alias", "list", "--json"))
        team = [a for a in aliases if a["alias"] == "team@" + DOMAIN][0]
        self.assertEqual(team["destinations"], ["alice@" + DOMAIN, "bob@" + DOMAIN])
        # the password is stored hashed, Dovecot style, readable by authd's user only
        with open(i.path("auth", "passwd")) as f:
            line = [l for l in f if l.startswith("alice@" + DOMAIN + ":")][0]
        self.assertIn("{SHA512-CRYPT}$6$", line)
        self.assertNotIn("alice-secret", line)
        self.assertEqual(os.stat(i.path("auth", "passwd")).st_mode & 0o777, 0o600)

    def test_disable_enable_and_passwd_keep_the_rest(self):
        i = self.inst
        i.postctl("user", "add", "carol@" + DOMAIN, "--quota", "2M", "--password-stdin", input="c1\n")
        i.postctl("user", "disable", "carol@" + DOMAIN)

        def carol():
            return [u for u in json.loads(i.postctl("user", "list", "--json"))
                    if u["address"] == "carol@" + DOMAIN][0]
        self.assertTrue(carol()["disabled"])
        i.postctl("user", "passwd", "carol@" + DOMAIN, "--password-stdin", input="c2\n")
        self.assertTrue(carol()["disabled"])                     # a new password does not enable
        self.assertEqual(carol()["quota"], 2 * 1024 * 1024)      # nor drop the quota
        i.postctl("user", "enable", "carol@" + DOMAIN)
        self.assertFalse(carol()["disabled"])
        r = i.postctl_raw("user", "disable", "nobody@" + DOMAIN)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a mailbox", r.stderr)

    def test_admin_errors(self):
        i = self.inst
        r = i.postctl_raw("user", "add", "carol@nowhere.test", "--password-stdin", input="x\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("postctl domain add nowhere.test", r.stderr)
        r = i.postctl_raw("user", "add", "alice@" + DOMAIN, "--password-stdin", input="x\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("exists already", r.stderr)
        r = i.postctl_raw("domain", "add", "bad_domain!")
        self.assertEqual(r.returncode, 1)
        r = i.postctl_raw("domain", "del", DOMAIN)
        self.assertEqual(r.returncode, 1)
        self.assertIn("mailbox(es)", r.stderr)
        r = i.postctl_raw("alias", "add", "x@" + DOMAIN)
        self.assertEqual(r.returncode, 2)

    def test_delivery_to_user(self):
        before = len(maildir_files(self.inst, "bob"))
        body = b"Line one.\n..leading dot line\n.\n\nLast line without trailing newline"
        msg = make_message("to-bob", body, to="bob@" + DOMAIN)
        self.send(["bob@" + DOMAIN], msg)
        self.wait_delivered("bob", before + 1)
        data = read_message(maildir_files(self.inst, "bob")[-1])
        self.assertTrue(data.startswith(b"Return-Path: <sender@outside.test>\n"), data[:200])
        self.assertIn(b"\nReceived: from ", data)
        self.assertIn(b"by mx.example.test (Postern)", data)
        parsed = email.message_from_bytes(data)
        self.assertEqual(parsed["Subject"], "to-bob")
        # the body is byte-exact but for CRLF -> LF
        self.assertTrue(data.endswith(body.replace(b"\r\n", b"\n") + b"\n") or
                        data.endswith(body + b"\n"), data[-120:])
        # smtplib dot-stuffs on the wire ("...leading", ".."): we unstuff exactly once
        self.assertIn(b"\nLine one.\n..leading dot line\n.\n\nLast line", data)
        for d in ("tmp", "new", "cur"):
            self.assertTrue(os.path.isdir(self.inst.path("mail", DOMAIN, "bob", d)))

    def test_alias_to_two(self):
        a0 = len(maildir_files(self.inst, "alice"))
        b0 = len(maildir_files(self.inst, "bob"))
        self.send(["team@" + DOMAIN], make_message("to-team", to="team@" + DOMAIN))
        self.wait_delivered("alice", a0 + 1)
        self.wait_delivered("bob", b0 + 1)
        for user in ("alice", "bob"):
            msgs = [read_message(p) for p in maildir_files(self.inst, user)]
            self.assertEqual(sum(b"Subject: to-team" in m for m in msgs), 1, user)

    def test_postmaster_alias(self):
        a0 = len(maildir_files(self.inst, "alice"))
        self.send(["PostMaster@Example.TEST"], make_message("to-postmaster"))
        self.wait_delivered("alice", a0 + 1)

    def test_postmaster_of_the_host_name(self):
        # mydestination ($myhostname) holds only aliases: postctl must be able to add postmaster there
        i = self.inst
        a0 = len(maildir_files(i, "alice"))
        i.postctl("alias", "add", "postmaster@mx.example.test", "alice@" + DOMAIN)
        self.assertTrue(wait_until(lambda: self.rcpt_code("postmaster@mx.example.test") == 250, timeout=15))
        self.send(["postmaster@mx.example.test"], make_message("to-host-postmaster"))
        self.wait_delivered("alice", a0 + 1)
        r = i.postctl_raw("alias", "add", "x@elsewhere.test", "alice@" + DOMAIN)
        self.assertEqual(r.returncode, 1)
        self.assertIn("elsewhere.test is not a mailbox or alias domain", r.stderr)

    def rcpt_code(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@outside.test")
            return s.rcpt(rcpt)[0]

    def test_unknown_user_rejected_at_rcpt(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@outside.test")
            code, msg = s.rcpt("nobody@" + DOMAIN)
            self.assertEqual(code, 550)
            self.assertIn(b"5.1.1", msg)
            self.assertEqual(s.rcpt("alice@" + DOMAIN)[0], 250)

    def test_relay_denied_from_outside(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30,
                          source_address=("127.0.0.2", 0)) as s:
            s.ehlo("client.test")
            s.mail("sender@outside.test")
            code, msg = s.rcpt("victim@foreign.test")
            self.assertEqual(code, 554)
            self.assertIn(b"5.7.1", msg)
            self.assertIn(b"Relay access denied", msg)
            self.assertEqual(s.rcpt("alice@" + DOMAIN)[0], 250)   # our own users still OK

    def test_relay_allowed_from_mynetworks_is_queued(self):
        # trusted client: accepted; while its domain cannot be resolved it stays deferred, never lost
        self.send(["someone@foreign.test"], make_message("relay"), sender="alice@" + DOMAIN)
        out = wait_until(lambda: "someone@foreign.test" in self.inst.postctl("queue", "list"), timeout=10)
        self.assertTrue(out, self.inst.postctl("queue", "list"))

    def test_size_limit(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            code, _ = s.docmd("MAIL FROM:<a@outside.test> SIZE=300000")
            self.assertEqual(code, 552)
            s.rset()
            s.mail("a@outside.test")
            s.rcpt("alice@" + DOMAIN)
            code, msg = s.data(make_message("big", (b"y" * 998 + b"\n") * 250))
            self.assertEqual(code, 552)
            self.assertIn(b"5.3.4", msg)

    def test_bare_lf_rejected_and_nothing_smuggled(self):
        a0 = len(maildir_files(self.inst, "alice"))
        sock = socket.create_connection(("127.0.0.1", self.inst.smtp_port), timeout=10)
        f = sock.makefile("rb")
        f.readline()

        def cmd(line):
            sock.sendall(line)
            while True:
                reply = f.readline()
                if reply[3:4] != b"-":
                    return reply
        cmd(b"EHLO client.test\r\n")
        cmd(b"MAIL FROM:<a@outside.test>\r\n")
        cmd(b"RCPT TO:<alice@example.test>\r\n")
        self.assertTrue(cmd(b"DATA\r\n").startswith(b"354"))
        # a smuggled second message after <LF>.<LF> must not be accepted
        sock.sendall(b"Subject: first\r\n\r\nhello\n.\nMAIL FROM:<evil@outside.test>\r\n"
                     b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n")
        reply = f.readline()
        self.assertTrue(reply.startswith(b"550"), reply)
        self.assertTrue(cmd(b"QUIT\r\n").startswith(b"221"))
        sock.close()
        time.sleep(1.5)
        msgs = [read_message(p) for p in maildir_files(self.inst, "alice")]
        self.assertFalse(any(b"smuggled" in m for m in msgs))
        self.assertEqual(len(msgs), a0)

    def test_new_user_takes_effect_without_restart(self):
        i = self.inst
        i.postctl("user", "add", "dave@" + DOMAIN, "--password-stdin", input="dave-secret\n")
        # the running smtpd retires and its successor opens the new table within seconds
        def accepted():
            with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=10) as s:
                s.ehlo("client.test")
                s.mail("sender@outside.test")
                return s.rcpt("dave@" + DOMAIN)[0] == 250
        self.assertTrue(wait_until(accepted, timeout=10, interval=0.3), i.log()[-3000:])
        self.send(["dave@" + DOMAIN], make_message("to-dave", to="dave@" + DOMAIN))
        self.wait_delivered("dave", 1)

    def test_concurrent_100_messages_exactly_once(self):
        start = len(maildir_files(self.inst, "bob"))

        def one_connection(n):
            with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=60) as s:
                for k in range(10):
                    s.sendmail("load@outside.test", ["bob@" + DOMAIN],
                               make_message("load-%d-%d" % (n, k), to="bob@" + DOMAIN))
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(one_connection, range(10)))
        self.wait_delivered("bob", start + 100, timeout=60)
        time.sleep(1)
        subjects = []
        for p in maildir_files(self.inst, "bob"):
            m = email.message_from_bytes(read_message(p))
            if m["Subject"] and m["Subject"].startswith("load-"):
                subjects.append(m["Subject"])
        self.assertEqual(len(subjects), 100)
        self.assertEqual(len(set(subjects)), 100)


class RestartTest(unittest.TestCase):
    """Mail in the queue when the instance stops is delivered after it starts again."""

    def setUp(self):
        self.inst = Instance("restart")
        i = self.inst
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="pw\n")

    def tearDown(self):
        self.inst.cleanup()

    def test_queue_survives_stop_and_start(self):
        i = self.inst
        # qmgr is not running: mail accepted by smtpd waits in the queue
        with open(os.path.join(i.config_dir, "master.cf")) as f:
            master_cf = f.read()
        with open(os.path.join(i.config_dir, "master.cf"), "w") as f:
            f.write("\n".join(l for l in master_cf.splitlines() if not l.startswith("qmgr")) + "\n")
        i.start()
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            for k in range(20):
                s.sendmail("a@outside.test", ["alice@" + DOMAIN], make_message("queued-%d" % k))
        i.postctl("stop")
        self.assertEqual(len(maildir_files(i, "alice")), 0)
        self.assertEqual(len(os.listdir(i.path("queue", "incoming"))), 20)
        listing = json.loads(i.postctl("queue", "list", "--json"))
        self.assertEqual(len(listing), 20)
        with open(os.path.join(i.config_dir, "master.cf"), "w") as f:
            f.write(master_cf)
        i.start()
        ok = wait_until(lambda: len(maildir_files(i, "alice")) == 20, timeout=30)
        self.assertTrue(ok, i.log()[-3000:])
        self.assertTrue(wait_until(lambda: "Mail queue is empty" in i.postctl("queue", "list")))


class TableChangeTest(unittest.TestCase):
    """An admin adds a user and mail for it arrives at once: no daemon bounces or delays it on
    the table it had before (default back-off: 300 s, so a delay would show)."""

    def setUp(self):
        self.inst = Instance("tables")
        self.inst.postctl("domain", "add", DOMAIN)
        self.inst.start()

    def tearDown(self):
        self.inst.cleanup()

    def test_user_added_then_mailed_at_once(self):
        i = self.inst
        for n in range(3):
            user = "new%d" % n
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input="pw\n")
            # straight away, as a script would; a 4xx (table being reloaded) is retried like a client would
            deadline = time.time() + 10
            while True:
                try:
                    with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
                        s.sendmail("a@outside.test", ["%s@%s" % (user, DOMAIN)], make_message("hello-" + user))
                    break
                except smtplib.SMTPRecipientsRefused as e:
                    code = list(e.recipients.values())[0][0]
                    self.assertLess(code, 500, "permanent refusal of a user just added: %r" % e.recipients)
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.2)
            self.assertTrue(wait_until(lambda: len(maildir_files(i, user)) == 1, timeout=15),
                            "%s not delivered at once; log:\n%s" % (user, i.log()[-4000:]))
        self.assertNotIn("status=bounced", i.log())


class FailureTest(unittest.TestCase):
    """What goes wrong is deferred or set aside, never lost or written where it must not be."""

    def setUp(self):
        self.inst = Instance("fail")
        i = self.inst
        i.set_main_cf(minimal_backoff_time="1s", maximal_backoff_time="1s", queue_run_delay="1s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="pw\n")
        with open(os.path.join(i.config_dir, "master.cf")) as f:
            self.master_cf = f.read()

    def tearDown(self):
        self.inst.cleanup()

    def set_virtual(self, enabled):
        lines = self.master_cf.splitlines()
        if not enabled:
            lines = [l for l in lines if not l.startswith("virtual ")]
        with open(os.path.join(self.inst.config_dir, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def test_deferred_then_delivered_when_the_cause_is_gone(self):
        i = self.inst
        self.set_virtual(False)                 # the delivery agent is missing
        i.start()
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["alice@" + DOMAIN], make_message("deferred-first"))
        self.assertTrue(wait_until(lambda: "mail transport unavailable" in i.postctl("queue", "list"),
                                   timeout=15), i.log()[-3000:])
        # retried every second: between two attempts it waits in deferred/
        self.assertTrue(wait_until(lambda: [m["queue"] for m in json.loads(i.postctl("queue", "list", "--json"))]
                                   == ["deferred"], timeout=15), i.postctl("queue", "list"))
        self.assertEqual(len(maildir_files(i, "alice")), 0)
        self.set_virtual(True)
        i.postctl("reload")
        self.assertTrue(wait_until(lambda: len(maildir_files(i, "alice")) == 1, timeout=20), i.log()[-3000:])
        self.assertTrue(wait_until(lambda: "Mail queue is empty" in i.postctl("queue", "list")))

    def test_corrupt_queue_file_set_aside(self):
        i = self.inst
        i.start()
        bad_id = "0" * 13 + "ABCDE"
        path = i.path("queue", "incoming", bad_id)
        with open(path, "wb") as f:
            f.write(b"PSTQ" + b"\xff" * 200)   # right magic, nonsense after it
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam("postern")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.assertTrue(wait_until(lambda: os.path.exists(i.path("queue", "corrupt", bad_id)), timeout=20),
                        i.log()[-3000:])
        self.assertIn("%s: corrupt queue file moved to corrupt/" % bad_id, i.log())
        # the queue still works
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["alice@" + DOMAIN], make_message("after-corrupt"))
        self.assertTrue(wait_until(lambda: len(maildir_files(i, "alice")) == 1, timeout=20))

    def test_mailbox_path_escaping_the_base_is_refused(self):
        i = self.inst
        # a hostile table entry: must be deferred and logged, never written outside the mail base
        mailboxes = os.path.join(i.config_dir, "virtual_mailboxes")
        with open(mailboxes, "a") as f:
            f.write("evil@%s ../../escaped/\n" % DOMAIN)
        i.postctl("map", mailboxes)
        i.start()
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["evil@" + DOMAIN], make_message("escape"))
        self.assertTrue(wait_until(lambda: "bad mailbox path" in i.log(), timeout=15), i.log()[-3000:])
        self.assertFalse(os.path.exists(os.path.join(i.base, "escaped")))
        self.assertFalse(os.path.exists(i.path("escaped")))
        listing = json.loads(i.postctl("queue", "list", "--json"))
        self.assertEqual([r["address"] for r in listing[0]["recipients"]], ["evil@" + DOMAIN])


if __name__ == "__main__":
    main()
