"""header_checks, mime_header_checks and nested_header_checks with regexp: tables.

The how-to "Banning attachments" line (mime_header_checks with
/name=[^>]*\\.(bat|com|exe|dll|vbs)$/ REJECT) refuses a .exe attachment with
550 5.7.1 after the final dot, leaving nothing in the queue or the Maildir,
and lets a .pdf through; header_checks REJECT (case-insensitive), WARN
(logged, delivered), DISCARD (250, not delivered), HOLD (250, in hold/ until
postctl queue release), a folded header matched as
one line, the headers of an attached message/rfc822 (nested_header_checks =
$header_checks), BDAT, a table replaced while running, and start-time errors
(bad pattern with file:line, unsupported action, pcre:).
"""
import glob
import os
import smtplib
import socket
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"
GUIDE_LINE = "/name=[^>]*\\.(bat|com|exe|dll|vbs)$/ REJECT\n"
HEADER_RULES = ("/^Subject:.*viagra/ REJECT spam\n"
                "/^Subject:.*warnme/ WARN watch this\n"
                "/^Subject:.*dropme/ DISCARD dropped by test\n"
                "/^Subject:.*holdme/ HOLD held for review\n"
                "/^Subject:.*owncode/ REJECT 5.7.9 custom code\n")


def attachment_message(subject, filename):
    return ("From: sender@outside.test\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n"
            "--BOUND\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--BOUND\r\nContent-Type: application/octet-stream; name=%s\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=%s\r\n\r\nTVqQAAMAAAAEAAAA\r\n"
            "--BOUND--\r\n" % (subject, filename, filename)).encode()


def plain_message(subject, to="alice@example.test", extra=""):
    return ("From: sender@outside.test\r\nTo: %s\r\nSubject: %s\r\n%s\r\nHello.\r\n"
            % (to, subject, extra)).encode()


def nested_message(outer, inner):
    return ("From: sender@outside.test\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B1\"\r\n\r\n"
            "--B1\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n"
            "--B1\r\nContent-Type: message/rfc822\r\n\r\n"
            "From: other@outside.test\r\nSubject: %s\r\n\r\ninner body\r\n"
            "--B1--\r\n" % (outer, inner)).encode()


class HeaderChecksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("hdrchk")
        cls.hc = os.path.join(i.config_dir, "header_checks")
        cls.mhc = os.path.join(i.config_dir, "mime_header_checks")
        with open(cls.hc, "w") as f:
            f.write(HEADER_RULES)
        with open(cls.mhc, "w") as f:
            f.write(GUIDE_LINE)
        i.set_main_cf(mynetworks="127.0.0.1/32", queue_run_delay="1s",
                      header_checks="regexp:" + cls.hc,
                      mime_header_checks="regexp:" + cls.mhc)
        i.postctl("domain", "add", DOMAIN)
        for user in ("alice", "bob", "carol", "dave"):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input="pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def maildir(self, user):
        return sorted(glob.glob(self.inst.path("mail", DOMAIN, user, "new", "*")))

    def subjects(self, user):
        out = []
        for p in self.maildir(user):
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def queue_files(self):
        files = []
        for q in ("incoming", "active", "deferred", "hold"):
            files += glob.glob(self.inst.path("queue", q, "*"))
        return files

    def send(self, msg, rcpt="alice@example.test"):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            return s.sendmail("sender@outside.test", [rcpt], msg)

    def assert_rejected(self, msg, text, rcpt="alice@example.test"):
        before = len(self.maildir(rcpt.split("@")[0]))
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send(msg, rcpt)
        self.assertEqual(cm.exception.smtp_code, 550)
        self.assertEqual(cm.exception.smtp_error.decode(), "5.7.1 " + text)
        self.assertEqual(self.queue_files(), [])
        return before

    def deliver_marker(self, user, subject):
        """Send a clean message and wait for it: what was sent before it has been handled."""
        rcpt = "%s@%s" % (user, DOMAIN)
        self.send(plain_message(subject, to=rcpt), rcpt)
        self.assertTrue(wait_until(lambda: any(subject.encode() in m for m in self.subjects(user)),
                                   timeout=20), self.inst.log()[-3000:])

    def test_guide_exe_rejected_pdf_delivered(self):
        before = self.assert_rejected(attachment_message("invoice", "virus.exe"),
                                      "message content rejected")
        self.assertIn("reject: header Content-Type: application/octet-stream; name=virus.exe "
                      "from unknown[127.0.0.1]; from=<sender@outside.test> "
                      "to=<alice@example.test>: 5.7.1 message content rejected", self.inst.log())
        self.send(attachment_message("report-pdf", "report.pdf"))
        self.assertTrue(wait_until(lambda: any(b"report-pdf" in m for m in self.subjects("alice"))))
        self.assertFalse(any(b"virus.exe" in m for m in self.subjects("alice")))
        self.assertGreaterEqual(len(self.maildir("alice")), before + 1)

    def test_subject_reject_case_insensitive_and_folded(self):
        self.assert_rejected(plain_message("Cheap VIAGRA now"), "spam")
        # folded over two lines: matched as one logical line
        self.assert_rejected(plain_message("this is a long subject\r\n\tabout Viagra"), "spam")
        self.assertIn("reject: header Subject: this is a long subject about Viagra from", self.inst.log())
        self.deliver_marker("alice", "after-reject-marker")
        self.assertFalse(any(b"VIAGRA" in m or b"Viagra" in m for m in self.subjects("alice")))

    def test_reject_with_own_code(self):
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send(plain_message("owncode here"))
        self.assertEqual(cm.exception.smtp_code, 550)
        self.assertEqual(cm.exception.smtp_error, b"5.7.9 custom code")

    def test_warn_logged_and_delivered(self):
        self.send(plain_message("please warnme now"))
        self.assertTrue(wait_until(lambda: any(b"please warnme" in m for m in self.subjects("alice"))))
        self.assertRegex(self.inst.log(), r"[0-9A-Za-z]+: warning: header Subject: please warnme now "
                         r"from unknown\[127\.0\.0\.1\]; from=<sender@outside\.test> "
                         r"to=<alice@example\.test>: watch this")

    def test_discard_answered_250_not_delivered(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@outside.test")
            s.rcpt("bob@example.test")
            code, text = s.data(plain_message("dropme please", to="bob@example.test"))
        self.assertEqual(code, 250, text)
        self.assertEqual(self.queue_files(), [])
        self.assertIn("discard: header Subject: dropme please from unknown[127.0.0.1]",
                      self.inst.log())
        self.deliver_marker("bob", "bob-marker")
        self.assertFalse(any(b"dropme" in m for m in self.subjects("bob")))

    def test_hold_until_released(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@outside.test")
            s.rcpt("dave@example.test")
            code, text = s.data(plain_message("please holdme", to="dave@example.test"))
        self.assertEqual(code, 250, text)
        qid = text.decode().split()[-1]
        self.assertEqual([os.path.basename(p) for p in self.queue_files()], [qid])
        self.assertTrue(os.path.exists(self.inst.path("queue", "hold", qid)))
        self.assertIn("%s: hold: header Subject: please holdme from unknown[127.0.0.1]" % qid,
                      self.inst.log())
        self.assertIn(qid + "!", self.inst.postctl("queue", "list"))
        self.deliver_marker("dave", "dave-marker")      # qmgr runs, the held one stays
        self.assertFalse(any(b"holdme" in m for m in self.subjects("dave")))
        self.inst.postctl("queue", "release", qid)
        self.assertTrue(wait_until(lambda: any(b"holdme" in m for m in self.subjects("dave")),
                                   timeout=30), self.inst.log()[-3000:])
        self.assertTrue(wait_until(lambda: self.queue_files() == [], timeout=10))

    def test_nested_message_headers(self):
        self.assert_rejected(nested_message("fwd", "inner viagra offer"), "spam")
        self.assertIn("reject: header Subject: inner viagra offer", self.inst.log())
        self.send(nested_message("fwd-clean", "inner fine"))
        self.assertTrue(wait_until(lambda: any(b"fwd-clean" in m for m in self.subjects("alice"))))

    def test_nul_does_not_hide_a_name(self):
        msg = attachment_message("nul", "x.exe").replace(b"application/octet-stream;",
                                                          b"application/octet-stream;\0")
        msg = msg.replace(b"attachment;", b"attachment;\0")
        try:
            self.send(msg)
            self.fail("accepted: " + self.inst.log()[-2000:])
        except smtplib.SMTPDataError as e:
            self.assertEqual(e.smtp_code, 550)
        self.assertEqual(self.queue_files(), [])

    def test_mime_beyond_parser_limits_refused(self):
        # an .exe under 40 levels of multipart: past lib/mime's depth limit, so refused whole
        head = "From: sender@outside.test\r\nTo: alice@example.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        body = ""
        for level in range(40):
            body += "Content-Type: multipart/mixed; boundary=\"L%d\"\r\n\r\n--L%d\r\n" % (level, level)
        body += "Content-Type: application/octet-stream; name=deep.exe\r\n\r\nTVqQ\r\n"
        for level in reversed(range(40)):
            body += "--L%d--\r\n" % level
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send((head + body).encode())
        self.assertEqual(cm.exception.smtp_code, 550)
        self.assertIn(b"5.6.0", cm.exception.smtp_error)
        # 2500 parts: past the part limit
        parts = "".join("--P\r\nContent-Type: text/plain\r\n\r\n%d\r\n" % n for n in range(2500))
        msg = (head + "Content-Type: multipart/mixed; boundary=\"P\"\r\n\r\n" + parts
               + "--P\r\nContent-Type: application/octet-stream; name=late.exe\r\n\r\nTVqQ\r\n--P--\r\n")
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            self.send(msg.encode())
        self.assertIn(b"5.6.0", cm.exception.smtp_error)
        self.assertEqual(self.queue_files(), [])
        # a few levels and parts are fine
        self.send(nested_message("shallow-ok", "inner fine"))
        self.assertTrue(wait_until(lambda: any(b"shallow-ok" in m for m in self.subjects("alice"))))

    def bdat(self, msg):
        s = socket.create_connection(("127.0.0.1", self.inst.smtp_port), timeout=30)
        f = s.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline().decode()
                lines.append(line)
                if line[3:4] != "-":
                    return "".join(lines)
        reply()
        s.sendall(b"EHLO client.test\r\n")
        self.assertIn("CHUNKING", reply())
        s.sendall(b"MAIL FROM:<sender@outside.test>\r\nRCPT TO:<carol@example.test>\r\n")
        self.assertTrue(reply().startswith("250"))
        self.assertTrue(reply().startswith("250"))
        half = len(msg) // 2
        s.sendall(b"BDAT %d\r\n" % half + msg[:half])
        self.assertTrue(reply().startswith("250"))
        s.sendall(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        final = reply()
        s.sendall(b"QUIT\r\n")
        reply()
        s.close()
        return final

    def test_bdat(self):
        final = self.bdat(attachment_message("bdat-exe", "tool.exe"))
        self.assertTrue(final.startswith("550 5.7.1 message content rejected"), final)
        self.assertEqual(self.queue_files(), [])
        final = self.bdat(attachment_message("bdat-pdf", "doc.pdf"))
        self.assertTrue(final.startswith("250"), final)
        self.assertTrue(wait_until(lambda: any(b"bdat-pdf" in m for m in self.subjects("carol"))))
        self.assertFalse(any(b"bdat-exe" in m for m in self.subjects("carol")))

    def test_table_changed_while_running(self):
        tmp = self.hc + ".new"
        with open(tmp, "w") as f:
            f.write(HEADER_RULES + "/^Subject: newrule/ REJECT new rule\n")
        os.rename(tmp, self.hc)
        pid = self.inst.master_pid()

        def rejected():
            try:
                self.send(plain_message("newrule probe", to="carol@example.test"), "carol@example.test")
            except smtplib.SMTPDataError as e:
                return e.smtp_code == 550 and b"new rule" in e.smtp_error
            return False
        self.assertTrue(wait_until(rejected, timeout=30, interval=0.5), self.inst.log()[-3000:])
        self.assertEqual(self.inst.master_pid(), pid)      # no restart
        # and edited in place (same file, new content)
        with open(self.hc, "w") as f:
            f.write(HEADER_RULES + "/^Subject: inplace/ REJECT in place\n")

        def rejected2():
            try:
                self.send(plain_message("inplace probe", to="carol@example.test"), "carol@example.test")
            except smtplib.SMTPDataError as e:
                return e.smtp_code == 550 and b"in place" in e.smtp_error
            return False
        self.assertTrue(wait_until(rejected2, timeout=30, interval=0.5), self.inst.log()[-3000:])
        with open(tmp, "w") as f:
            f.write(HEADER_RULES)
        os.rename(tmp, self.hc)


class HeaderChecksConfigTest(unittest.TestCase):
    """Errors a table can cause are found before mail flows: postctl check and start."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("hdrcfg")

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def check_with(self, table_text, want, param="header_checks", prefix="regexp:"):
        path = os.path.join(self.inst.config_dir, "hc_bad")
        with open(path, "w") as f:
            f.write(table_text)
        self.inst.set_main_cf(**{param: prefix + path})
        r = self.inst.postctl_raw("check")
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(want.replace("PATH", path), r.stdout + r.stderr)
        return path

    def test_bad_regexp_file_line(self):
        path = self.check_with("# ok\n/fine/ DUNNO\n/broken(/ REJECT\n", "PATH:3: bad regular expression")
        # start: smtpd refuses to run with it (master retries it, throttled), the port stays shut
        r = self.inst.postctl_raw("start")
        want = path + ":3: bad regular expression"
        self.assertTrue(r.returncode != 0 or wait_until(lambda: want in self.inst.log(), timeout=20),
                        r.stdout + r.stderr + self.inst.log())
        self.assertIn(want, r.stdout + r.stderr + self.inst.log())
        self.assertFalse(self.inst.port_open(self.inst.smtp_port))
        self.inst.stop()

    def test_unknown_flag(self):
        self.check_with("/x/q REJECT\n", "PATH:1: unsupported flag 'q'", param="mime_header_checks")

    def test_unsupported_action(self):
        self.check_with("/^Subject:/ PREPEND X-Bad: yes\n", "unsupported header check action 'PREPEND'",
                        param="nested_header_checks")

    def test_pcre_refused(self):
        self.check_with("/x/ REJECT\n", "use regexp:", prefix="pcre:")

    def tearDown(self):
        self.inst.set_main_cf(header_checks="", mime_header_checks="$header_checks",
                              nested_header_checks="$header_checks")


if __name__ == "__main__":
    main()
