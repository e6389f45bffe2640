"""smtpd ESMTP extensions with real clients: what EHLO offers on each kind of
connection (plain, after STARTTLS, submission), enhanced status codes on every
reply, 8BITMIME, SMTPUTF8, CHUNKING/BDAT (chunks, LAST, pipelined, mixing with
DATA, errors that skip the chunk and stay in step, size limit, malformed
sizes), DSN parameters validated and kept in the queue file, and swaks with
pipelining, STARTTLS and AUTH together; openssl s_client on 25 and 465.
"""
import glob
import re
import smtplib
import ssl
import subprocess
import time
import unittest

from postern_test import Instance, main, wait_until
from smtpd_helpers import Client, add_services, queue_file_envelope

DOMAIN = "example.test"
P_SMALL = 2701                           # message_size_limit = 1000


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE             # the instance's certificate is self-signed
    return ctx


def ehlo_keywords(text):
    """Keywords of a raw EHLO reply ("250-KEYWORD ..." lines after the first)."""
    return [line[4:].split()[0].upper() for line in text.splitlines()[1:]]


def smtplib_keywords(text):
    """Keywords of smtplib's EHLO text (codes stripped, first line the host name)."""
    return [line.split()[0].upper() for line in text.decode().splitlines()[1:]]


class EsmtpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("esmtp")
        i.set_main_cf(mynetworks="127.0.0.1/32")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        add_services(i, {P_SMALL: ["message_size_limit=1000"]})
        i.start()
        assert wait_until(lambda: i.port_open(i.port_base + P_SMALL)), i.log()[-3000:]
        cls.smtp = i.smtp_port
        cls.submission = i.port_base + 587
        cls.submissions = i.port_base + 465

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def maildir(self):
        return sorted(glob.glob(self.inst.path("mail", DOMAIN, "alice", "new", "*")))

    def wait_delivered(self, count):
        return wait_until(lambda: len(self.maildir()) >= count, timeout=15)

    # -- EHLO ---------------------------------------------------------------------

    def test_ehlo_offers_what_is_usable(self):
        c = Client(self.smtp)
        code, text = c.cmd("EHLO client.test")
        kw = ehlo_keywords(text)
        for k in ("PIPELINING", "SIZE", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
                  "SMTPUTF8", "CHUNKING"):
            self.assertIn(k, kw)
        self.assertNotIn("AUTH", kw)            # no SASL on port 25
        self.assertIn("250-SIZE 10240000", text)
        c.close()
        with smtplib.SMTP("127.0.0.1", self.smtp) as s:
            s.starttls(context=tls_context())
            code, text = s.ehlo("client.test")
            kw = smtplib_keywords(text)
            self.assertNotIn("STARTTLS", kw)
            self.assertIn("CHUNKING", kw)
        with smtplib.SMTP("127.0.0.1", self.submission) as s:
            code, text = s.ehlo("client.test")
            kw = smtplib_keywords(text)
            self.assertIn("STARTTLS", kw)
            self.assertNotIn("AUTH", kw)        # smtpd_tls_auth_only on 587
            s.starttls(context=tls_context())
            code, text = s.ehlo("client.test")
            self.assertIn(b"AUTH PLAIN LOGIN", text)

    def test_enhanced_status_codes_everywhere(self):
        c = Client(self.smtp, source="127.0.0.2")
        replies = []
        for line in ["HELO client.test", "EHLO client.test", "NOOP", "HELP", "VRFY alice",
                     "BOGUS", "MAIL FROM:<bad", "MAIL FROM:<a@b.test> FOO=1",
                     "RCPT TO:<alice@example.test>", "DATA", "MAIL FROM:<a@b.test>",
                     "MAIL FROM:<a@b.test>", "RCPT TO:<nobody@example.test>",
                     "RCPT TO:<x@foreign.test>", "DATA", "RCPT TO:<alice@example.test> BAD=1",
                     "RCPT TO:<alice@example.test>", "BDAT 0", "RSET", "STARTTLS x", "AUTH PLAIN",
                     "BDAT 5\r\nabc", "QUIT"]:
            c.send(line.encode() + b"\r\n")
            replies.append((line, c.read()))
        c.sock.close()
        # RFC 2034: every reply but the greeting and HELO/EHLO's carries a code of its class
        for line, (code, text) in replies:
            if line.split()[0] in ("HELO", "EHLO"):
                continue
            for l in text.splitlines():
                m = re.match(r"^(\d)\d\d[ -](\d)\.\d{1,3}\.\d{1,3} ", l)
                self.assertTrue(m, "%r: %r has no enhanced status code" % (line, l))
                self.assertEqual(m.group(1), m.group(2), l)

    # -- 8BITMIME, SMTPUTF8 ---------------------------------------------------------

    def test_8bitmime_and_smtputf8(self):
        c = Client(self.smtp, source="127.0.0.1")
        c.cmd("EHLO client.test")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test> BODY=8BITMIME")[0], 250)
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test> BODY=BINARYMIME")[0], 501)
        code, text = c.cmd("MAIL FROM:<j\u00f6rg@b.test>".encode())
        self.assertEqual(text, "553 5.6.7 Must declare SMTPUTF8 to send unicode address")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>")[0], 250)
        code, text = c.cmd("RCPT TO:<j\u00f6rg@exists.test>".encode())
        self.assertEqual(code, 553, text)
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<j\u00f6rg@b.test> SMTPUTF8".encode())[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<r\u00e9mi@relay.test>".encode())[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: caf\u00e9\r\n\r\nUTF-8 everywhere\r\n.".encode())
        self.assertEqual(code, 250, text)
        c.close()
        qid = text.split()[-1]
        env = dict(queue_file_envelope(self.inst, qid) or [])
        self.assertEqual(env.get("smtputf8"), "1", env)
        self.assertEqual(env.get("sender"), "j\u00f6rg@b.test")

    # -- BDAT ---------------------------------------------------------------------

    def test_bdat_chunks(self):
        before = len(self.maildir())
        c = Client(self.smtp, source="127.0.0.2")
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        part1 = b"Subject: chunked\r\n\r\nfirst line\r\n.dot line\r\n"
        part2 = b"bare LF line\nlast line\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        self.assertEqual(c.read(), (250, "250 2.0.0 Ok: %d bytes" % len(part1)))
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        code, text = c.read()
        self.assertEqual(code, 250, text)
        self.assertIn("queued as", text)
        # after the message: a new transaction, DATA allowed again
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertEqual(c.cmd("Subject: plain\r\n\r\nbody\r\n.")[0], 250)
        c.close()
        self.assertTrue(self.wait_delivered(before + 2))
        bodies = []
        for path in self.maildir():
            with open(path, "rb") as f:
                bodies.append(f.read())
        chunked = [b for b in bodies if b"Subject: chunked" in b]
        self.assertEqual(len(chunked), 1)
        # no dot-unstuffing in BDAT; CRLF and bare LF are both line ends
        self.assertIn(b"\n.dot line\nbare LF line\nlast line\n", chunked[0])
        self.assertIn("bdat=2", self.inst.log())

    def test_bdat_pipelined_and_mixing(self):
        c = Client(self.smtp, source="127.0.0.2")
        c.cmd("EHLO client.test")
        body = b"Subject: pipelined\r\n\r\nhello\r\n"
        c.send(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\n"
               b"BDAT 5\r\nSubje" + b"BDAT %d LAST\r\n" % (len(body) - 5) + body[5:] + b"NOOP\r\n")
        codes = [c.read()[0] for _ in range(5)]
        self.assertEqual(codes, [250, 250, 250, 250, 250])
        # DATA, RCPT or MAIL inside a BDAT transaction are refused
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        c.send(b"BDAT 4\r\nabc\n")
        self.assertEqual(c.read()[0], 250)
        self.assertEqual(c.cmd("DATA"), (503, "503 5.5.1 Error: DATA after BDAT"))
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>"),
                         (503, "503 5.5.1 Error: RCPT after BDAT"))
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>"), (503, "503 5.5.1 Error: MAIL after BDAT"))
        self.assertEqual(c.cmd("RSET")[0], 250)
        # a refused BDAT still has its bytes read: commands inside them are not run
        c.send(b"BDAT 6\r\nQUIT\r\n")
        self.assertEqual(c.read(), (503, "503 5.5.1 Error: need MAIL command"))
        self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(c.cmd("BDAT 0"), (551, "551 5.7.1 Null BDAT request"))
        c.send(b"BDAT 12x\r\n")
        self.assertEqual(c.read(), (521, "521 5.5.4 Syntax: BDAT count [LAST]"))
        self.assertEqual(c.read()[0], 0)        # closed: nothing after it could be understood
        c.sock.close()

    def test_bdat_size_limit(self):
        port = self.inst.port_base + P_SMALL
        c = Client(port, source="127.0.0.2")
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@b.test>")
        c.cmd("RCPT TO:<alice@example.test>")
        chunk = b"x" * 598 + b"\r\n"
        c.send(b"BDAT 600\r\n" + chunk)
        self.assertEqual(c.read()[0], 250)
        c.send(b"BDAT 600\r\n" + chunk)
        self.assertEqual(c.read(), (552, "552 5.3.4 Chunk exceeds message size limit"))
        # the rest of the transaction's chunks are read and refused; LAST ends it
        c.send(b"BDAT 600 LAST\r\n" + chunk)
        self.assertEqual(c.read()[0], 552)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
        c.send(b"BDAT 10 LAST\r\nSubject: \r\n")
        self.assertEqual(c.read()[0], 250)
        c.close()
        self.assertIn("message exceeds 1000 bytes", self.inst.log())

    def test_client_gone_before_the_250(self):
        # the commit runs on after the session ended: the message is stored (a client that
        # saw no 250 sends it again: a duplicate, never a loss), and nothing crashes
        before = len(self.maildir())
        for i in range(5):
            c = Client(self.smtp, source="127.0.0.2")
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@b.test>")
            c.cmd("RCPT TO:<alice@example.test>")
            c.cmd("DATA")
            c.send(b"Subject: gone %d\r\n\r\nbye\r\n.\r\n" % i)
            c.sock.close()
        self.assertTrue(self.wait_delivered(before + 5), self.inst.log()[-2000:])
        c = Client(self.smtp, source="127.0.0.2")
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()

    # -- DSN ----------------------------------------------------------------------

    def test_dsn_parameters_stored(self):
        c = Client(self.smtp, source="127.0.0.1")
        c.cmd("EHLO client.test")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test> RET=hdrs ENVID=QQ+2B314")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<x@relay.test> NOTIFY=failure,success "
                               "ORCPT=rfc822;x+2Bo@relay.test")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<y@relay.test> NOTIFY=NEVER")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<z@relay.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: dsn\r\n\r\nbody\r\n.")
        self.assertEqual(code, 250, text)
        c.close()
        env = queue_file_envelope(self.inst, text.split()[-1])
        self.assertIsNotNone(env)
        d = dict(env)
        self.assertEqual(d.get("ret"), "HDRS")
        self.assertEqual(d.get("envid"), "QQ+314")
        # per recipient, in order: rcpt, then its orcpt/notify
        rcpts = []
        for name, value in env:
            if name == "rcpt":
                rcpts.append({"rcpt": value})
            elif name in ("orcpt", "notify"):
                rcpts[-1][name] = value
        self.assertEqual(rcpts, [
            {"rcpt": "x@relay.test", "notify": "FAILURE,SUCCESS", "orcpt": "rfc822;x+o@relay.test"},
            {"rcpt": "y@relay.test", "notify": "NEVER"},
            {"rcpt": "z@relay.test"},
        ])

    def test_dsn_syntax_errors(self):
        c = Client(self.smtp, source="127.0.0.1")
        c.cmd("EHLO client.test")
        for line, reply in [
            ("MAIL FROM:<a@b.test> RET=BODY", "501 5.5.4 Bad RET parameter syntax"),
            ("MAIL FROM:<a@b.test> RET=FULL RET=HDRS", "501 5.5.4 Bad RET parameter syntax"),
            ("MAIL FROM:<a@b.test> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax"),
            ("MAIL FROM:<a@b.test> ENVID=a+0A", "501 5.5.4 Bad ENVID parameter syntax"),
            ("MAIL FROM:<a@b.test> ENVID=" + "x" * 101, "501 5.5.4 Bad ENVID parameter syntax"),
        ]:
            self.assertEqual(c.cmd(line)[1], reply, line)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.test>")[0], 250)
        for line, reply in [
            ("RCPT TO:<x@relay.test> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
            ("RCPT TO:<x@relay.test> NOTIFY=SUCCESS,SUCCESS", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
            ("RCPT TO:<x@relay.test> NOTIFY=", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
            ("RCPT TO:<x@relay.test> ORCPT=x@relay.test", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
            ("RCPT TO:<x@relay.test> ORCPT=rfc822;", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
            ("RCPT TO:<x@relay.test> ORCPT=rfc822;a+0Db", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
        ]:
            self.assertEqual(c.cmd(line)[1], reply, line)
        c.close()

    # -- real clients ---------------------------------------------------------------

    def test_swaks_pipelining_starttls_auth(self):
        before = len(self.maildir())
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.submission),
                            "--from", "alice@" + DOMAIN, "--to", "alice@" + DOMAIN,
                            "--pipeline", "--tls", "--auth", "PLAIN",
                            "--auth-user", "alice@" + DOMAIN, "--auth-password", "alice-pw",
                            "--h-Subject", "swaks pipelined", "--timeout", "30"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("250 2.0.0 Ok: queued as", r.stdout)
        self.assertTrue(self.wait_delivered(before + 1))

    def test_openssl_s_client(self):
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                            "127.0.0.1:%d" % self.smtp, "-brief", "-ign_eof"],
                           input="EHLO client.test\nQUIT\n", capture_output=True, text=True,
                           timeout=30)
        self.assertIn("CHUNKING", r.stdout)
        self.assertIn("Protocol version: TLSv1.3", r.stdout + r.stderr)
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.submissions,
                            "-brief", "-ign_eof"], input="EHLO client.test\nQUIT\n", capture_output=True,
                           text=True, timeout=30)
        self.assertIn("220 ", r.stdout)
        self.assertIn("250-AUTH PLAIN LOGIN", r.stdout)


if __name__ == "__main__":
    main()
