"""sendmail (and mailq): local submission through maildrop/ and qmgr's pickup step.
Messages piped to bin/sendmail as root and as an unprivileged user arrive in the Maildir
with the right envelope sender; -t/-i/-f/-F/-bs/-bp, usage errors, qmgr down (the file waits
in maildrop/), and hostile maildrop files (truncated, huge, binary, NUL, symlink) that end in
corrupt/ without any daemon crashing."""
import email
import email.policy
import glob
import os
import pwd
import subprocess
import unittest

from postern_test import Instance, is_root, main, wait_until

DOMAIN = "example.test"
EX_USAGE = 64
EX_NOINPUT = 66


class SendmailTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("sendmail")
        i = cls.inst
        i.set_main_cf(myorigin=DOMAIN, message_size_limit="200000")
        i.postctl("domain", "add", DOMAIN)
        for u in ("alice", "bob", "carol", "root", "nobody"):
            i.postctl("user", "add", "%s@%s" % (u, DOMAIN), "--password-stdin", input="pw-%s\n" % u)
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def sendmail(self, *args, input=b"", user=None, prog="sendmail", env_config=True):
        cmd = [os.path.join(self.inst.bin, prog)] + list(args)
        if user:
            pw = pwd.getpwnam(user)
            cmd = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups", "--"] + cmd
        env = dict(os.environ)
        if env_config:
            env["POSTERN_CONFIG"] = self.inst.config_dir
        return subprocess.run(cmd, input=input, capture_output=True, env=env, timeout=30)

    def mailbox(self, user):
        return sorted(glob.glob(self.inst.path("mail", DOMAIN, user, "new", "*")))

    def wait_message(self, user, marker, timeout=20):
        def find():
            for p in self.mailbox(user):
                with open(p, "rb") as f:
                    data = f.read()
                if marker.encode() in data:
                    return email.message_from_bytes(data, policy=email.policy.default)
            return None
        msg = wait_until(find, timeout=timeout)
        self.assertIsNotNone(msg, "no message %s for %s; log:\n%s" % (marker, user, self.inst.log()[-3000:]))
        return msg

    def maildrop(self):
        return os.listdir(self.inst.path("queue", "maildrop"))

    def test_t_i_as_root(self):
        msg = (b"To: Alice <alice@example.test>, \"Bob, B.\" <bob@example.test>\n"
               b"Cc: (copy) carol\n"
               b"Bcc: nobody@example.test\n"
               b"Subject: from cron t-i-root\n\n"
               b"line one\n.\nline after a dot\n")
        r = self.sendmail("-t", "-i", input=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        for user in ("alice", "bob", "carol", "nobody"):
            m = self.wait_message(user, "t-i-root")
            self.assertEqual(m["Return-Path"], "<root@%s>" % DOMAIN)
            self.assertIsNone(m["Bcc"])
            self.assertIn("line after a dot", m.get_content())      # -i: "." does not end it
            self.assertIn("from userid 0", m["Received"])
            self.assertTrue(m["Message-Id"] and m["Date"])
            self.assertIn("<root@%s>" % DOMAIN, m["From"])        # with root's gecos name

    def test_unprivileged_user(self):
        r = self.sendmail("alice@" + DOMAIN, input=b"Subject: nobody-submits\n\nhi\n", user="nobody")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.wait_message("alice", "nobody-submits")
        self.assertEqual(m["Return-Path"], "<nobody@%s>" % DOMAIN)
        self.assertIn("from userid %d" % pwd.getpwnam("nobody").pw_uid, m["Received"])
        # the user may drop files but not list the directory (others' mail stays private)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            "ls", self.inst.path("queue", "maildrop")], capture_output=True)
        self.assertNotEqual(r.returncode, 0)

    def test_f_and_F(self):
        r = self.sendmail("-f", "robot@sender.test", "-F", "Cron Daemon", "--", "bob",
                          input=b"Subject: f-and-F\n\nbody\n.\nnot part of it\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.wait_message("bob", "f-and-F")
        self.assertEqual(m["Return-Path"], "<robot@sender.test>")
        self.assertEqual(m["From"], "Cron Daemon <robot@sender.test>")
        self.assertNotIn("not part of it", m.get_content())       # without -i a lone "." ends it
        # -fADDR glued, -oXXX ignored, a null sender
        r = self.sendmail("-f<>", "-oem", "-odi", "-oi", "carol", input=b"Subject: null-sender\n\nx\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m = self.wait_message("carol", "null-sender")
        self.assertEqual(m["Return-Path"], "<>")

    def test_bs(self):
        dialogue = (b"EHLO localhost\r\nMAIL FROM:<script@example.test> BODY=8BITMIME\r\n"
                    b"RCPT TO:<alice@example.test>\r\nRCPT TO:<bad address>\r\nDATA\r\n"
                    b"Subject: via-bs\r\n\r\n..dot-stuffed\r\n.\r\nQUIT\r\n")
        r = self.sendmail("-bs", input=dialogue)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertTrue(out.startswith("220 "), out)
        self.assertIn("501 5.1.3", out)
        self.assertRegex(out, r"250 2.0.0 Ok: queued as [0-9A-F]{20}")
        self.assertTrue(out.rstrip().endswith("221 2.0.0 Bye"), out)
        m = self.wait_message("alice", "via-bs")
        self.assertEqual(m["Return-Path"], "<script@example.test>")
        self.assertIn(".dot-stuffed", m.get_content())
        self.assertNotIn("..dot-stuffed", m.get_content())

    def test_usage_errors(self):
        self.assertEqual(self.sendmail("-Q", "alice").returncode, EX_USAGE)
        r = self.sendmail(input=b"Subject: x\n\n")
        self.assertEqual(r.returncode, EX_USAGE)          # no recipients
        self.assertIn(b"no recipients", r.stderr)
        r = self.sendmail("-t", input=b"Subject: no-to\n\nbody\n")
        self.assertEqual(r.returncode, EX_USAGE)
        self.assertEqual(self.sendmail("-f").returncode, EX_USAGE)
        r = self.sendmail("-C", "/nonexistent/etc", "alice", input=b"x\n", env_config=False)
        self.assertEqual(r.returncode, EX_NOINPUT)
        r = self.sendmail("alice", input=b"Subject: big\n\n" + b"x" * 80 + b"\n" * 1 + (b"y" * 999 + b"\n") * 300)
        self.assertNotEqual(r.returncode, 0)              # over message_size_limit

    def test_mailq(self):
        r = self.sendmail(prog="mailq")
        self.assertEqual(r.returncode, 0, r.stderr)
        r2 = self.sendmail("-bp")
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertEqual(r.stdout, r2.stdout)
        r = self.sendmail("-q")                           # postctl queue flush
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(wait_until(lambda: "flush requested" in self.inst.log(), timeout=10))

    def test_qmgr_down_then_picked_up(self):
        i = self.inst
        i.stop()
        try:
            self.assertTrue(wait_until(lambda: i.master_pid() is None, timeout=20))
            r = self.sendmail("bob@" + DOMAIN, input=b"Subject: while-down\n\nqueued\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(self.maildrop()), 1, self.maildrop())
        finally:
            i.start()
        self.wait_message("bob", "while-down")
        self.assertTrue(wait_until(lambda: not self.maildrop(), timeout=10), self.maildrop())

    def test_hostile_maildrop_files(self):
        i = self.inst
        d = i.path("queue", "maildrop")
        good = b"POSTERN-MAILDROP 1\nsender=x@example.test\nrcpt=alice@example.test\n\n"
        files = {
            "A0000000000000000001": b"POSTERN-MAILDROP 1\nsender=x@example.test\nrcpt=ali",     # truncated
            "A0000000000000000002": good + b"Subject: huge\n\n" + b"z" * 300000,               # too big
            "A0000000000000000003": os.urandom(5000),                                           # binary
            "A0000000000000000004": good + b"Subject: nul\n\nbad\0byte\n",                     # NUL
            "A0000000000000000005": b"POSTERN-MAILDROP 1\nsender=x\nrcpt=a\x01b\n\nx\n",       # control char
            "A0000000000000000006": b"POSTERN-MAILDROP 1\nsender=x\n\nno recipients\n",
            "A0000000000000000007": b"POSTERN-MAILDROP 1\nsender=" + b"s" * 5000 + b"\nrcpt=a\n\nx\n",
        }
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        os.symlink("/etc/passwd", os.path.join(d, "A0000000000000000008"))
        os.mkfifo(os.path.join(d, "A0000000000000000009"))                   # would block a reader
        os.mkdir(os.path.join(d, "A000000000000000000A"))                     # empty: removed
        os.link(os.path.join(d, "A0000000000000000003"), os.path.join(d, "A000000000000000000B"))
        names = list(files) + ["A0000000000000000008", "A0000000000000000009", "A000000000000000000B"]
        corrupt = lambda: [n for n in names if os.path.lexists(i.path("queue", "corrupt", "maildrop." + n))]
        self.assertTrue(wait_until(lambda: len(corrupt()) == len(names), timeout=20),
                        (corrupt(), self.maildrop(), i.log()[-3000:]))
        self.assertEqual(self.maildrop(), [])
        # still working afterwards, and nothing bad was delivered
        r = self.sendmail("alice", input=b"Subject: after-hostile\n\nok\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_message("alice", "after-hostile")
        for p in self.mailbox("alice"):
            with open(p, "rb") as f:
                self.assertNotIn(b"Subject: huge", f.read())
        self.assertEqual(i.crashes(), [])


if __name__ == "__main__":
    if not is_root():
        print("test_sendmail needs root (an unprivileged submitter); skipped")
    main()
