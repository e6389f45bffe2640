"""Security battery: what an attacker on the Internet (or a hostile file in the
queue, or a hostile table entry) tries, against one real instance.

- relay tricks on the submission ports without AUTH (port 25 is test_relay's):
  every one refused with a 5xx;
- SMTP smuggling: end-of-data variants (<LF>.<LF>, <CR>.<CR>, <LF>.<CRLF>,
  <CR><LF>.<LF>, <CR>.<LF>, <LF>..<LF>) followed by a second transaction in the
  same DATA: at most one message is queued, and no Maildir message starts with
  the smuggled header;
- STARTTLS pipelining injection on 25 and 587: commands sent behind STARTTLS in
  the same packet are not executed;
- AUTH refused before TLS on 587, AUTH not offered on 25 without TLS;
- password guessing over submission: failures are answered late and the user
  is locked out after auth_failure_limit, even for the right password;
- IMAP: user A cannot reach user B's mailbox or anything outside A's home by
  folder name (../, absolute, ~bob, mUTF-7 spellings of "." and "/"), by LIST
  reference or pattern, or through symlinks planted in A's Maildir (a folder
  pointing at B's Maildir, a message file pointing at B's message);
- header injection through the envelope: CR/LF in HELO, MAIL FROM, RCPT TO and
  xtext-encoded in ORCPT/ENVID cannot add a header line to a delivered message
  or its DSN;
- hostile queue files crafted in incoming/ (valid CRCs, hostile envelope):
  moved to corrupt/ or refused per recipient, nothing written outside the
  queue and the mail base, and the queue keeps working;
- hostile map entries written into the text tables and compiled with postctl map
  (virtual_mailbox_maps: "..", absolute, control characters, > PATH_MAX, a planted
  symlink to outside, an empty value; virtual_alias_maps: files, commands,
  :include:; virtual_mailbox_limit_maps: absurd sizes; users whose entry is
  rewritten to point outside, over SMTP and IMAP): deferred (4.3.5 for a bad
  path, as Postfix's virtual(8)) or bounced, nothing written outside the mail
  base and the queue, no other user's Maildir changed, no crash.
Every test class prints its figures at the end.
"""
import base64
import glob
import imaplib
import json
import os
import re
import shutil
import smtplib
import socket
import ssl
import struct
import time
import unittest
import zlib

from postern_test import Instance, children_of, cmdline, is_root, main, wait_until
from smtpd_helpers import Client
from test_relay import TRICKS

DOMAIN = "example.test"
OUTSIDE = "127.0.0.2"
FIGURES = {}


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def count(name, n=1):
    FIGURES[name] = FIGURES.get(name, 0) + n


def maildir_messages(inst, user, folder=""):
    d = inst.path("mail", DOMAIN, user, "." + folder if folder else "")
    out = []
    for sub in ("new", "cur"):
        for p in sorted(glob.glob(os.path.join(d, sub, "*"))):
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
    return out


def headers_of(msg):
    return msg.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]


def tree(root):
    """{relative path: (size, mtime_ns)} of everything under root (symlinks not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


class Instance1:
    """One instance for the whole battery (users alice, bob, carol)."""
    inst = None

    @classmethod
    def get(cls):
        if cls.inst is None:
            i = cls.inst = Instance("sec")
            # 127.0.0.2 and up are the Internet: outside mynetworks
            i.set_main_cf(mynetworks="127.0.0.1/32", auth_failure_delay="1s", auth_failure_delay_max="2s",
                          auth_failure_limit="3", auth_lockout_time="10m")
            i.postctl("domain", "add", DOMAIN)
            for u in ("alice", "bob", "carol"):
                i.postctl("user", "add", "%s@%s" % (u, DOMAIN), "--password-stdin", input=u + "-pw\n")
            i.start()
            assert wait_until(lambda: i.port_open(i.port_base + 143), timeout=15), i.log()
        return cls.inst


class SMTPSecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance1.get()

    def test_relay_tricks_on_submission_ports_without_auth(self):
        i = self.inst
        for port, tls in ((i.port_base + 587, "starttls"), (i.port_base + 465, "wrapper")):
            for name, rcpt in TRICKS:
                sock = socket.create_connection(("127.0.0.1", port), timeout=15,
                                                source_address=(OUTSIDE, 0))
                if tls == "wrapper":
                    sock = tls_context().wrap_socket(sock)
                f = sock.makefile("rb")

                def cmd(line):
                    if line:
                        sock.sendall(line + b"\r\n")
                    while True:
                        reply = f.readline()
                        if reply[3:4] != b"-":
                            return reply
                cmd(None)
                cmd(b"EHLO outside.test")
                if tls == "starttls":
                    self.assertTrue(cmd(b"STARTTLS").startswith(b"220"))
                    sock = tls_context().wrap_socket(sock)
                    f = sock.makefile("rb")
                    cmd(b"EHLO outside.test")
                self.assertTrue(cmd(b"MAIL FROM:<x@outside.test>").startswith(b"250"))
                reply = cmd(b"RCPT TO:" + rcpt)
                with self.subTest(port=port, trick=name):
                    self.assertTrue(reply[:1] == b"5", "%s on %d: %r" % (name, port, reply))
                count("relay tricks refused on 587/465 without AUTH", reply[:1] == b"5")
                count("relay tricks tried on 587/465 without AUTH")
                sock.close()

    SMUGGLE = [("LF.LF", b"\n.\n"), ("CR.CR", b"\r.\r"), ("LF.CRLF", b"\n.\r\n"),
               ("CRLF.LF", b"\r\n.\n"), ("CR.LF", b"\r.\n"), ("LF..LF", b"\n..\n"),
               ("CRLF.CR", b"\r\n.\r"), ("CRLF.NUL", b"\r\n.\x00\r\n")]

    def test_smtp_smuggling(self):
        i = self.inst
        for name, eod in self.SMUGGLE:
            tag = name.replace(".", "dot")
            before = maildir_messages(i, "bob")
            c = Client(i.smtp_port, source=OUTSIDE)
            c.cmd("EHLO outside.test")
            self.assertEqual(c.cmd("MAIL FROM:<a@outside.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<bob@example.test>")[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: first-" + tag.encode() + b"\r\n\r\nhello" + eod +
                   b"MAIL FROM:<evil@outside.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
                   b"Subject: smuggled-" + tag.encode() + b"\r\n\r\nx\r\n.\r\nQUIT\r\n")
            replies = []
            while True:
                code, text = c.read()
                if code == 0:
                    break
                replies.append(text)
                if code == 221:
                    break
            c.sock.close()
            queued = [r for r in replies if r.startswith("250") and "queued" in r]
            with self.subTest(variant=name):
                self.assertLessEqual(len(queued), 1, "%s: %r" % (name, replies))
                self.assertFalse(any(r.startswith("354") for r in replies),
                                 "%s: a second DATA was accepted: %r" % (name, replies))
            # what reached the mailbox: never a message whose own header is the smuggled one
            if queued:
                wait_until(lambda: len(maildir_messages(i, "bob")) > len(before), timeout=15)
            new = [m for m in maildir_messages(i, "bob") if m not in before]
            for m in new:
                self.assertNotIn(b"\nSubject: smuggled", b"\n" + headers_of(m), name)
                self.assertNotIn(b"From: evil", headers_of(m))
            count("smuggling variants tried")
            count("smuggling variants with a second message injected", 0)
            count("smuggling variants refused outright (no 250)", not queued)

    def test_starttls_pipelining_injection(self):
        i = self.inst
        for port in (i.smtp_port, i.port_base + 587):
            c = Client(port, source=OUTSIDE)
            c.cmd("EHLO outside.test")
            # the attack: commands behind STARTTLS in the same packet, to be read after the handshake
            c.send(b"STARTTLS\r\nMAIL FROM:<evil@outside.test>\r\nRCPT TO:<bob@example.test>\r\n")
            code, text = c.read()
            self.assertEqual(code, 220, text)
            tls = tls_context().wrap_socket(c.sock)
            f = tls.makefile("rb")

            def cmd(line):
                tls.sendall(line + b"\r\n")
                while True:
                    reply = f.readline()
                    if reply[3:4] != b"-":
                        return reply
            reply = cmd(b"EHLO outside.test")
            self.assertTrue(reply.startswith(b"250"), reply)
            # had the MAIL been executed, RCPT would get a 250/554, not "need MAIL"
            reply = cmd(b"RCPT TO:<bob@example.test>")
            self.assertTrue(reply.startswith(b"503"), "port %d: %r" % (port, reply))
            cmd(b"QUIT")
            tls.close()
            count("STARTTLS injections tried (all ignored)")

    def test_auth_before_tls(self):
        i = self.inst
        c = Client(i.port_base + 587, source=OUTSIDE)
        code, text = c.cmd("EHLO outside.test")
        self.assertNotIn("AUTH", text)
        code, text = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0alice-pw").decode())
        self.assertTrue(530 <= code < 540 or code == 503, text)
        c.close()
        c = Client(i.smtp_port, source=OUTSIDE)
        code, text = c.cmd("EHLO outside.test")
        self.assertNotIn("AUTH", text)
        code, text = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0alice-pw").decode())
        self.assertEqual(code // 100, 5, text)
        c.close()
        count("AUTH attempts before TLS (all refused)", 2)

    def test_password_guessing(self):
        i = self.inst
        delays = []
        refused_right = False
        for attempt in range(6):
            s = smtplib.SMTP("127.0.0.1", i.port_base + 587, timeout=60,
                             source_address=("127.0.0.3", 0))
            s.starttls(context=tls_context())
            started = time.time()
            try:
                s.login("carol@" + DOMAIN, "wrong-%d" % attempt)
                self.fail("a wrong password was accepted")
            except smtplib.SMTPAuthenticationError as e:
                self.assertIn(e.smtp_code, (535, 454))
            delays.append(time.time() - started)
            s.close()
        s = smtplib.SMTP("127.0.0.1", i.port_base + 587, timeout=60, source_address=("127.0.0.3", 0))
        s.starttls(context=tls_context())
        try:
            s.login("carol@" + DOMAIN, "carol-pw")
        except smtplib.SMTPAuthenticationError:
            refused_right = True
        s.close()
        self.assertTrue(refused_right, "the right password was accepted after 6 failures: no lockout")
        FIGURES["password guesses answered (s, each)"] = " ".join("%.1f" % d for d in delays)
        count("right password refused while locked out", 1)

    def test_envelope_header_injection(self):
        i = self.inst
        inject = b"X-Injected: yes"
        attempts = [
            ("bare CR in HELO", b"EHLO a.test\r" + inject, b"<alice@example.test>", b"<bob@example.test>", b""),
            ("bare CR in MAIL FROM", b"EHLO a.test", b"<alice@example.test>\r" + inject, b"<bob@example.test>", b""),
            ("bare CR in RCPT TO", b"EHLO a.test", b"<alice@example.test>", b"<bob@example.test>\r" + inject, b""),
            ("CR in a quoted local part", b"EHLO a.test", b"<\"x\r" + inject + b"\"@outside.test>",
             b"<bob@example.test>", b""),
            ("xtext CRLF in ORCPT", b"EHLO a.test", b"<alice@example.test>",
             b"<bob@example.test> NOTIFY=SUCCESS ORCPT=rfc822;b+0D+0AX-Injected:+20yes@example.test", b""),
            ("xtext CRLF in ENVID", b"EHLO a.test", b"<alice@example.test> ENVID=x+0D+0AX-Injected:+20yes",
             b"<bob@example.test> NOTIFY=SUCCESS", b""),
            ("NUL in MAIL FROM", b"EHLO a.test", b"<alice@exa\x00mple.test>", b"<bob@example.test>", b""),
        ]
        accepted = 0
        corrupt_before = set(os.listdir(i.path("queue", "corrupt")))
        for name, helo, sender, rcpt, _ in attempts:
            c = Client(i.smtp_port, source="127.0.0.1")     # from mynetworks: the most trusted path
            c.cmd(helo)
            ok = c.cmd(b"MAIL FROM:" + sender)[0] == 250 and c.cmd(b"RCPT TO:" + rcpt)[0] == 250
            if ok and c.cmd(b"DATA")[0] == 354:
                code, text = c.cmd(b"Subject: injection " + name.encode() + b"\r\n\r\nbody\r\n.")
                accepted += code == 250
            c.close()
            count("envelope injection attempts")
        # bob's copies and alice's DSNs (NOTIFY=SUCCESS) have had time to arrive
        time.sleep(3)
        wait_until(lambda: not os.listdir(i.path("queue", "active")), timeout=15)
        for user in ("alice", "bob"):
            for m in maildir_messages(i, user):
                for line in m.replace(b"\r\n", b"\n").split(b"\n"):
                    self.assertFalse(line.startswith(b"X-Injected"), "%s got %r" % (user, line))
        self.assertEqual(set(os.listdir(i.path("queue", "corrupt"))), corrupt_before,
                         "an injection attempt made a corrupt queue file")
        FIGURES["envelope injection attempts accepted (then harmless)"] = accepted


class IMAPIsolationTest(unittest.TestCase):
    NAMES = ["../bob", "../../example.test/bob", "..", ".", "../", "/", "/etc", "/tmp",
             "~bob", "~bob/INBOX", "~/../bob", "INBOX/../../bob", "INBOX.../bob", ".bob",
             "&AC4ALg-", "&AC4ALgAv-bob", "&AC8-etc", "&AC4-&AC4-", "Sent/../../bob",
             "..\\bob", "%2e%2e/bob", "bob/../../bob", "\u2215bob", "../bob/.BobHidden/cur",
             "BobHidden", "../bob/.BobHidden", "../bob/cur", "INBOX/../../../../etc/passwd"]
    LISTS = [('""', '"*"'), ('"../"', '"*"'), ('""', '"../*"'), ('"~bob"', '"*"'), ('"/"', '"*"'),
             ('"../bob"', '"%"'), ('""', '"%/../%"'), ('""', '"../bob/*"'), ('"/etc"', '"%"'),
             ('""', '"*/../*"'), ('"&AC4ALg-"', '"*"'), ('"~"', '"*"'), ('""', '"/*"')]

    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance1.get()
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("x@outside.test", ["bob@" + DOMAIN], b"Subject: bob-secret\r\n\r\nbob only\r\n")
            # alice's Maildir exists and her INBOX is not empty, whichever class ran before
            s.sendmail("x@outside.test", ["alice@" + DOMAIN], b"Subject: alice-own\r\n\r\nalice\r\n")
        assert wait_until(lambda: maildir_messages(i, "bob"), timeout=20), i.log()
        assert wait_until(lambda: any(b"alice-own" in m for m in maildir_messages(i, "alice")), timeout=20)
        m = imaplib.IMAP4("127.0.0.1", i.port_base + 143, timeout=30)
        m.login("bob@" + DOMAIN, "bob-pw")
        assert m.create("BobHidden")[0] == "OK"
        m.logout()

    def login(self, user):
        m = imaplib.IMAP4("127.0.0.1", self.inst.port_base + 143, timeout=30)
        m.login("%s@%s" % (user, DOMAIN), user + "-pw")
        return m

    def outside_alice(self):
        """Everything under the mail base but alice's home (it must not change)."""
        i = self.inst
        base = i.path("mail")
        t = tree(base)
        return {k: v for k, v in t.items() if not k.startswith(os.path.join(DOMAIN, "alice"))
                and not k.startswith(".postern")}

    def assert_no_bob(self, what, typ, data, listing=False):
        """No trace of bob's message; in a LIST/LSUB answer, no trace of bob's folder either
        (other answers may echo the name alice sent)."""
        text = b" ".join(x if isinstance(x, bytes) else b" ".join(y for y in x if isinstance(y, bytes))
                         for x in data if x is not None)
        self.assertNotIn(b"bob-secret", text, what)
        self.assertNotIn(b"bob only", text, what)
        if listing:
            self.assertNotIn(b"BobHidden", text, what)

    def quoted(self, name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def test_folder_names_and_list_patterns(self):
        before = self.outside_alice()
        m = self.login("alice")
        tried = 0
        for name in self.NAMES:
            q = self.quoted(name)
            if any(ord(ch) > 127 for ch in name):
                q = '"' + name.encode("utf-8").decode("latin-1") + '"'
            for what, call in (("SELECT", lambda: m.select(q)), ("EXAMINE", lambda: m.select(q, True)),
                               ("STATUS", lambda: m.status(q, "(MESSAGES)")),
                               ("CREATE", lambda: m.create(q)), ("DELETE", lambda: m.delete(q)),
                               ("SUBSCRIBE", lambda: m.subscribe(q)),
                               ("RENAME", lambda: m.rename('"Sent"', q)),
                               ("APPEND", lambda: m.append(q, None, None, b"Subject: planted\r\n\r\nx\r\n"))):
                try:
                    typ, data = call()
                except imaplib.IMAP4.error as e:
                    typ, data = "BAD", [str(e).encode()]
                except (UnicodeEncodeError, UnicodeDecodeError):
                    continue
                tried += 1
                self.assert_no_bob("%s %s" % (what, name), typ, data)
                if typ == "OK" and what in ("SELECT", "EXAMINE"):
                    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
                    self.assert_no_bob("FETCH after SELECT %s" % name, typ, data)
                    m.close()
                if typ == "OK" and what == "RENAME":
                    m.rename(q, '"Sent"')       # a legal name after all: put it back
        for ref, pattern in self.LISTS:
            typ, data = m.list(ref, pattern)
            tried += 1
            self.assert_no_bob("LIST %s %s" % (ref, pattern), typ, data, listing=True)
            typ, data = m.lsub(ref, pattern)
            # LSUB lists alice's own subscriptions, names she sent included (RFC 3501 6.3.6
            # lets her subscribe to a name that does not exist): only message content counts
            self.assert_no_bob("LSUB %s %s" % (ref, pattern), typ, data)
        m.logout()
        self.assertEqual(before, self.outside_alice(), "something outside alice's home changed")
        count("IMAP folder names and LIST patterns tried by alice", tried)

    @unittest.skipUnless(is_root(), "symlinks are planted as vmail (root needed to chown them)")
    def test_planted_symlinks(self):
        import pwd
        i = self.inst
        vmail = pwd.getpwnam("vmail")
        alice = i.path("mail", DOMAIN, "alice")
        bob = i.path("mail", DOMAIN, "bob")
        bob_msg = glob.glob(os.path.join(bob, "new", "*")) + glob.glob(os.path.join(bob, "cur", "*"))
        self.assertTrue(bob_msg)
        plants = [(os.path.join(alice, ".Evil"), bob),                       # folder -> B's Maildir
                  (os.path.join(alice, ".Evil2"), os.path.join(bob, ".BobHidden")),
                  (os.path.join(alice, ".Etc"), "/etc")]
        os.makedirs(os.path.join(alice, ".Half"), exist_ok=True)             # real folder, cur -> B
        os.makedirs(os.path.join(alice, ".Half", "new"), exist_ok=True)
        os.makedirs(os.path.join(alice, ".Half", "tmp"), exist_ok=True)
        plants.append((os.path.join(alice, ".Half", "cur"), os.path.join(bob, "cur")))
        os.makedirs(os.path.join(alice, "cur"), exist_ok=True)
        plants.append((os.path.join(alice, "cur", "1700000000.M1P1.planted:2,"), bob_msg[0]))
        for link, target in plants:
            os.symlink(target, link)
            os.lchown(link, vmail.pw_uid, vmail.pw_gid)
        for d in (os.path.join(alice, ".Half"), os.path.join(alice, ".Half", "new"),
                  os.path.join(alice, ".Half", "tmp")):
            os.chown(d, vmail.pw_uid, vmail.pw_gid)
        before = self.outside_alice()
        bob_before = tree(bob)
        m = self.login("alice")
        tried = 0
        for folder in ("INBOX", "Evil", "Evil2", "Etc", "Half"):
            for what, call in (("SELECT", lambda: m.select(folder)),
                               ("STATUS", lambda: m.status(folder, "(MESSAGES)"))):
                typ, data = call()
                tried += 1
                self.assert_no_bob("%s %s" % (what, folder), typ, data)
                if typ == "OK" and what == "SELECT":
                    for items in ("(BODY.PEEK[])", "(ENVELOPE)", "(RFC822.SIZE BODYSTRUCTURE)"):
                        typ2, data2 = m.fetch("1:*", items)
                        self.assert_no_bob("FETCH %s in %s" % (items, folder), typ2, data2)
                    typ2, data2 = m.search(None, "TEXT", '"bob only"')
                    self.assertEqual(data2, [b""], "SEARCH in %s found bob's text" % folder)
                    m.store("1:*", "+FLAGS", r"(\Deleted)")
                    m.expunge()
                    m.close()
            for what, call in (("APPEND", lambda: m.append(folder, None, None, b"Subject: x\r\n\r\nx\r\n")),
                               ("DELETE", lambda: m.delete(folder)),
                               ("RENAME", lambda: m.rename(folder, "Moved"))):
                typ, data = call()
                tried += 1
        typ, data = m.list('""', '"*"')
        self.assert_no_bob("LIST with planted links", typ, data, listing=True)
        m.logout()
        self.assertEqual(bob_before, tree(bob), "bob's Maildir changed through alice's links")
        changed = {k for k in set(before) | set(self.outside_alice())
                   if before.get(k) != self.outside_alice().get(k) and not k.startswith(DOMAIN + "/bob")}
        self.assertEqual(changed, set(), "written outside alice's home")
        self.assertTrue(all(os.path.exists(t) for _, t in plants))
        count("IMAP operations through planted symlinks (none reached bob or /etc)", tried)


class HostileQueueFileTest(unittest.TestCase):
    """Queue files crafted in incoming/, with CRCs right so that the envelope is what is judged."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance1.get()

    @staticmethod
    def build(env_lines, nrcpt, message=b"Subject: hostile\n\nbody\n", records=None):
        env = b"".join(l + b"\n" for l in env_lines)
        status = b""
        for n in range(nrcpt):
            rec = bytearray(160) if records is None else bytearray(records[n])
            if records is None:
                rec[144:148] = struct.pack("<I", n)
            rec[156:160] = struct.pack("<I", zlib.crc32(bytes(rec[:156])))
            status += bytes(rec)
        head = bytearray(64)
        head[0:4] = b"PSTQ"
        struct.pack_into("<HHIIII", head, 4, 1, 0, 96, len(env), nrcpt, 160)
        struct.pack_into("<QQQI", head, 24, 96 + len(env), 96 + len(env) + 160 * nrcpt,
                         len(message), zlib.crc32(message))
        struct.pack_into("<I", head, 60, zlib.crc32(bytes(head[:60]) + env))
        sched = bytearray(32)
        struct.pack_into("<I", sched, 28, zlib.crc32(bytes(sched[:28])))
        return bytes(head) + bytes(sched) + env + status + message

    def plant(self, qid, data):
        i = self.inst
        tmp = i.path("queue", "maildrop", qid + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        if is_root():
            import pwd
            pw = pwd.getpwnam("postern")
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o600)
        os.rename(tmp, i.path("queue", "incoming", qid))

    def envelope(self, qid, msg, rcpts, sender=b"a@outside.test", extra=()):
        return ([b"queue_id=" + qid.encode(), b"sender=" + sender, b"arrival=%d" % int(time.time()),
                 b"protocol=ESMTP"] + list(extra) + [b"size=%020d" % len(msg)] +
                [b"rcpt=" + r for r in rcpts])

    def test_builder_matches_real_files(self):
        # our builder must speak the real format, or the tests below prove nothing
        i = self.inst
        qid = "0000000000001AAAAA"
        msg = b"Subject: built\n\nok\n"
        self.plant(qid, self.build(self.envelope(qid, msg, [b"alice@example.test"]), 1, msg))
        self.assertTrue(wait_until(lambda: any(b"Subject: built" in m for m in maildir_messages(i, "alice")),
                                   timeout=20), i.log()[-3000:])
        self.assertNotIn(qid, os.listdir(i.path("queue", "corrupt")))

    def test_hostile_files(self):
        i = self.inst
        msg = b"Subject: hostile\n\nbody\n"
        mail_before = tree(i.path("mail"))
        tmp_before = set(os.listdir("/tmp"))
        cases = {
            # name -> (queue id, file bytes, must land in corrupt/)
            "queue_id of another file": ("0000000000002AAAAA", self.build(
                self.envelope("0000000000002BBBBB", msg, [b"alice@example.test"]), 1, msg), True),
            "queue_id with a path": ("0000000000003AAAAA", self.build(
                self.envelope("../../../tmp/pwned", msg, [b"alice@example.test"]), 1, msg), True),
            "recipient count lies": ("0000000000004AAAAA", self.build(
                self.envelope("0000000000004AAAAA", msg, [b"alice@example.test", b"bob@example.test"]),
                1, msg), True),
            "size field lies": ("0000000000005AAAAA", self.build(
                [l if not l.startswith(b"size=") else b"size=%020d" % 99 for l in
                 self.envelope("0000000000005AAAAA", msg, [b"alice@example.test"])], 1, msg), True),
            "status record in the wrong slot": ("0000000000006AAAAA", self.build(
                self.envelope("0000000000006AAAAA", msg, [b"alice@example.test", b"bob@example.test"]),
                2, msg, records=[bytes(144) + struct.pack("<I", 1) + bytes(12),
                                 bytes(144) + struct.pack("<I", 0) + bytes(12)]), True),
            "state byte out of range": ("0000000000007AAAAA", self.build(
                self.envelope("0000000000007AAAAA", msg, [b"alice@example.test"]), 1, msg,
                records=[bytes([9]) + bytes(143) + struct.pack("<I", 0) + bytes(12)]), True),
            "reason length past its field": ("0000000000008AAAAA", self.build(
                self.envelope("0000000000008AAAAA", msg, [b"alice@example.test"]), 1, msg,
                records=[bytes([3, 250]) + bytes(142) + struct.pack("<I", 0) + bytes(12)]), True),
            "orcpt before any rcpt": ("0000000000009AAAAA", self.build(
                self.envelope("0000000000009AAAAA", msg, [b"alice@example.test"],
                              extra=[b"orcpt=rfc822;x@y"]), 1, msg), True),
            "duplicate sender": ("000000000000AAAAAA", self.build(
                self.envelope("000000000000AAAAAA", msg, [b"alice@example.test"],
                              extra=[b"sender=b@outside.test"]), 1, msg), True),
            # well-formed files whose recipients try to reach outside the mail base
            "recipient with ../": ("000000000000BAAAAA", self.build(
                self.envelope("000000000000BAAAAA", msg, [b"../../../tmp/x@example.test",
                                                          b"alice/../bob@example.test"]), 2, msg), False),
            "recipient in a path-like domain": ("000000000000CAAAAA", self.build(
                self.envelope("000000000000CAAAAA", msg, [b"bob@../../../tmp", b"bob@example.test/../x"]),
                2, msg), False),
        }
        for name, (qid, data, _) in cases.items():
            self.plant(qid, data)
        for name, (qid, data, corrupt) in cases.items():
            with self.subTest(case=name):
                if corrupt:
                    ok = wait_until(lambda: os.path.exists(i.path("queue", "corrupt", qid)), timeout=20)
                    self.assertTrue(ok, "%s: not moved to corrupt/; log:\n%s" % (name, i.log()[-2000:]))
                else:
                    ok = wait_until(lambda: not os.path.exists(i.path("queue", "incoming", qid)) and
                                    not os.path.exists(i.path("queue", "active", qid)), timeout=20)
                    self.assertTrue(ok, "%s: still being handled" % name)
            count("hostile queue files planted")
            count("hostile queue files moved to corrupt/", os.path.exists(i.path("queue", "corrupt", qid)))
        # nothing written where it must not be
        self.assertFalse(set(os.listdir("/tmp")) - tmp_before & {"pwned", "x", "x@example.test"})
        self.assertFalse(set(os.listdir(i.base)) - {"inst"}, "written beside the instance")
        for k in set(tree(i.path("mail"))) - set(mail_before):
            self.assertTrue(k.startswith(os.path.join(DOMAIN, "alice")) or k.startswith(DOMAIN + "/bob")
                            or k.startswith(".postern"), "unexpected file in the mail base: " + k)
        self.assertFalse(os.path.exists(i.path("mail", "tmp")))
        self.assertFalse(os.path.exists(i.path("tmp")))
        # and the queue still works
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["alice@" + DOMAIN], b"Subject: after-hostile\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: any(b"after-hostile" in m for m in maildir_messages(i, "alice")),
                                   timeout=20))
        self.assertEqual(self.inst.crashes(), [])



def boot_ticks():
    """Now, in the clock ticks of /proc/PID/stat's start time (since boot)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")


def started_at(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


class HostileMapEntryTest(unittest.TestCase):
    """Text tables edited behind postctl's back (an admin's slip, a compromised provisioning
    script) with entries that try to make virtual, qmgr or imapd write outside the mail base,
    then compiled with `postctl map`; the daemons pick the new tables up by themselves."""
    SENDER = "hm-sender@" + DOMAIN
    TABLES = ("virtual_mailboxes", "virtual_aliases", "virtual_mailbox_limits")
    TABLE_READERS = ("smtpd", "qmgr", "virtual", "imapd")
    # virtual_mailbox_maps: local part -> (path, dsn, status); Postfix's virtual(8) defers a
    # bad entry with 4.3.5, we do too; what the file system refuses (a symlink in the way, a
    # name too long, a directory we may not write) is 4.2.0
    MAILBOXES = {
        "hm-dotdot": (b"../../../tmp/pwned/", "4.3.5", "deferred"),
        "hm-deep-dotdot": (b"example.test/../../../../../../../../tmp/pwned/", "4.3.5", "deferred"),
        "hm-abs": (b"/tmp/pwned-abs/", "4.3.5", "deferred"),
        "hm-alice-bob": (b"example.test/alice/../bob/", "4.3.5", "deferred"),
        "hm-dot": (b"./", "4.3.5", "deferred"),
        "hm-root": (b"/", "4.3.5", "deferred"),
        "hm-ctl": (b"example.test/ctl\x01x/", "4.3.5", "deferred"),
        "hm-esc": (b"example.test/\x1b[2J/", "4.3.5", "deferred"),
        "hm-cr": (b"example.test/cr\rx/", "4.3.5", "deferred"),
        "hm-vt": (b"example.test/vt\x0bx/", "4.3.5", "deferred"),
        "hm-ff": (b"example.test/ff\x0cx/", "4.3.5", "deferred"),
        "hm-del": (b"example.test/del\x7fx/", "4.3.5", "deferred"),
        "hm-long": (b"example.test/" + (b"a" * 200 + b"/") * 25, "4.3.5", "deferred"),
        "hm-longname": (b"example.test/" + b"b" * 300 + b"/", "4.2.0", "deferred"),
        "hm-link": (b"example.test/link/", "4.2.0", "deferred"),
        "hm-link-sub": (b"example.test/link/sub/", "4.2.0", "deferred"),
        # inside another user's Maildir but for a .folder: among bob's messages, or where his
        # maildirsize belongs
        "hm-in-bob-new": (b"example.test/bob/new/", "4.3.5", "deferred"),
        "hm-in-bob-cur": (b"example.test/bob/cur/", "4.3.5", "deferred"),
        "hm-in-bob-quota": (b"example.test/bob/maildirsize/", "4.3.5", "deferred"),
        "hm-in-bob-tmp": (b"example.test/./bob//tmp/x/", "4.3.5", "deferred"),
        # a legal name (U+0085 NEL, UTF-8): delivered, to its own directory inside the base
        "hm-nel": (b"example.test/hm-nel\xc2\x85x/", "2.0.0", "sent"),
        # absurd quotas: a warning, and no limit (mail keeps flowing), in its own Maildir
        "hm-q-neg": (b"example.test/hm-q-neg/", "2.0.0", "sent"),
        "hm-q-huge": (b"example.test/hm-q-huge/", "2.0.0", "sent"),
        "hm-q-abc": (b"example.test/hm-q-abc/", "2.0.0", "sent"),
        "hm-q-unit": (b"example.test/hm-q-unit/", "2.0.0", "sent"),
    }
    ROOT_ONLY = {
        # the mail base's own directory (authd's socket); without root nothing forbids vmail
        "hm-postern": (b".postern/", "4.2.0", "deferred"),
    }
    LIMITS = {"hm-q-neg": b"-1", "hm-q-huge": b"99999999999999999999999", "hm-q-abc": b"abc",
              "hm-q-unit": b"9223372036854775807G"}
    # virtual_alias_maps: local part -> (value, [(final address, dsn, status)])
    ALIASES = {
        "hm-file": (b"/tmp/pwned-file", [("/tmp/pwned-file@mx.example.test", "4.4.0", "deferred")]),
        "hm-cmd": (b"|touch /tmp/pwned-cmd", [("|touch@mx.example.test", "4.4.0", "deferred"),
                                              ("/tmp/pwned-cmd@mx.example.test", "4.4.0", "deferred")]),
        "hm-cmd-quoted": (b'"|touch /tmp/pwned-cmdq"',
                          [('"|touch /tmp/pwned-cmdq"@mx.example.test', "4.4.0", "deferred")]),
        "hm-include": (b":include:/etc/passwd", [(":include:/etc/passwd@mx.example.test", "4.4.0",
                                                  "deferred")]),
        "hm-up": (b"../x@example.test", [("../x@example.test", "5.1.1", "bounced")]),
    }
    # users made by `postctl user add`, then their entry rewritten
    USERS = {"hm-dave": (b"../../../../etc/", "4.3.5"), "hm-erin": (b"example.test/link/", "4.2.0"),
             "hm-frank": (b"example.test/bob/cur/", "4.3.5")}
    OUTSIDE_NAMES = {"pwned", "pwned-abs", "pwned-file", "pwned-cmd", "pwned-cmdq", "tmp", "new", "cur",
                     "maildirsize", "subscriptions"}

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance1.get()
        cls.saved = {t: cls.read_table(t) for t in cls.TABLES}
        try:
            cls.plant()
        except BaseException:
            try:
                cls.tearDownClass()     # unittest will not: leave the shared instance as it was
            finally:
                raise

    @classmethod
    def plant(cls):
        i = cls.inst
        cls.outside = os.path.join(i.base, "outside")        # the planted symlink's target
        os.makedirs(cls.outside, exist_ok=True)
        cls.link = i.path("mail", DOMAIN, "link")
        os.makedirs(os.path.dirname(cls.link), mode=0o700, exist_ok=True)
        bob = [i.path("mail", DOMAIN, "bob", sub) for sub in ("", "tmp", "new", "cur")]
        for d in bob:                               # bob's Maildir, whichever class ran first
            os.makedirs(d, mode=0o700, exist_ok=True)
        if not os.path.lexists(cls.link):
            os.symlink(cls.outside, cls.link)
        if is_root():
            import pwd
            vmail = pwd.getpwnam("vmail")
            for d in bob + [os.path.dirname(cls.link), cls.outside]:
                os.chown(d, vmail.pw_uid, vmail.pw_gid)
            os.lchown(cls.link, vmail.pw_uid, vmail.pw_gid)
        for u in cls.USERS:
            i.postctl("user", "add", "%s@%s" % (u, DOMAIN), "--password-stdin", input=u + "-pw\n")
        cls.added = {t: cls.read_table(t) for t in cls.TABLES}
        cls.mailboxes = dict(cls.MAILBOXES, **(cls.ROOT_ONLY if is_root() else {}))
        mailboxes = b"".join(l + b"\n" for l in cls.added["virtual_mailboxes"].splitlines()
                             if l.split(b" ")[0] not in {("%s@%s" % (u, DOMAIN)).encode() for u in cls.USERS})
        mailboxes += ("%s example.test/hm-sender/\n" % cls.SENDER).encode()
        for u, (path, _) in cls.USERS.items():
            mailboxes += ("%s@%s " % (u, DOMAIN)).encode() + path + b"\n"
        for local, (path, _, _) in cls.mailboxes.items():
            mailboxes += ("%s@%s " % (local, DOMAIN)).encode() + path + b"\n"
        aliases = cls.added["virtual_aliases"] + b"".join(
            ("%s@%s " % (local, DOMAIN)).encode() + value + b"\n" for local, (value, _) in cls.ALIASES.items())
        limits = cls.added["virtual_mailbox_limits"] + b"".join(
            ("%s@%s " % (local, DOMAIN)).encode() + value + b"\n" for local, value in cls.LIMITS.items())
        cls.install({"virtual_mailboxes": mailboxes, "virtual_aliases": aliases,
                     "virtual_mailbox_limits": limits})

    @classmethod
    def tearDownClass(cls):
        i = cls.inst
        if os.path.lexists(cls.link):
            os.unlink(cls.link)
        shutil.rmtree(cls.outside, ignore_errors=True)
        r = i.postctl_raw("queue", "list", "--json")
        ids = [m["queue_id"] for m in json.loads(r.stdout or "[]") if m.get("sender") == cls.SENDER]
        if ids:
            i.postctl("queue", "delete", *ids)
        cls.install(getattr(cls, "added", cls.saved))
        for u in cls.USERS:
            i.postctl_raw("user", "del", "%s@%s" % (u, DOMAIN))
        if any(cls.read_table(t) != cls.saved[t] for t in cls.TABLES):
            cls.install(cls.saved)      # set-up stopped half-way

    @classmethod
    def read_table(cls, name):
        with open(cls.inst.path("etc", name), "rb") as f:
            return f.read()

    @classmethod
    def install(cls, tables):
        """Write the text tables and compile them, as an admin would; then wait until every
        daemon that reads them has them."""
        mark = boot_ticks()
        for name, text in tables.items():
            with open(cls.inst.path("etc", name), "wb") as f:
                f.write(text)
            cls.inst.postctl("map", cls.inst.path("etc", name))
        cls.wait_for_tables(mark)

    @classmethod
    def wait_for_tables(cls, mark):
        """Chrooted daemons retire when a table is replaced and fresh ones open it: wait until
        every process that reads the tables started after mark (the first replacement). One
        that started between two replacements may hold an old copy of the later table and
        retires by itself at its next check, once a second: wait that long too. Unprivileged
        daemons reopen the files in place, after the same check."""
        i = cls.inst
        if not is_root():
            time.sleep(2.5)
            return

        def fresh():
            for pid in children_of(i.master_pid()):
                try:
                    if os.path.basename(cmdline(pid)[0]) in cls.TABLE_READERS and started_at(pid) <= mark:
                        return False
                except (OSError, IndexError):
                    pass            # gone meanwhile
            return True
        assert wait_until(fresh, timeout=30, interval=0.2), "daemons kept the old tables:\n" + i.log()[-3000:]
        time.sleep(1.5)

    def snapshot(self):
        """What must not change: the instance's directories but the mail base, the queue and
        the daemons' own (data, auth, log), the symlink's target, and names in /tmp and /etc."""
        i = self.inst
        edited = {"etc/" + t + ext for t in self.TABLES for ext in ("", ".db", ".lock")}
        beside = {k: v for k, v in tree(i.base).items()
                  if k.split(os.sep)[0] != "inst" or (k.split(os.sep) + [""])[1] not in
                  ("mail", "queue", "data", "auth", "log")}
        beside = {k: v for k, v in beside.items() if k[len("inst/"):] not in edited and k != "inst/etc"}
        return {"beside": beside, "target": tree(self.outside),
                "tmp": set(os.listdir("/tmp")) & self.OUTSIDE_NAMES,
                "etc": set(os.listdir("/etc")) & self.OUTSIDE_NAMES,
                "passwd": os.stat("/etc/passwd").st_mtime_ns, "mail": tree(i.path("mail"))}

    def assert_nothing_outside(self, before):
        after = self.snapshot()
        written = 0
        for what in ("beside", "target", "tmp", "etc", "passwd"):
            with self.subTest(where=what):
                self.assertEqual(before[what], after[what], "written outside the mail base: " + what)
            written += before[what] != after[what]
        self.assertFalse(os.path.exists("/tmp/tmp/pwned"))
        return written

    def mail_changes(self, before, allowed):
        """Paths under the mail base that appeared or changed, but those of allowed mailboxes
        (their directories, relative to the base) and the domain directory itself."""
        after = tree(self.inst.path("mail"))
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        return sorted(k for k in changed if k != DOMAIN and k != os.path.join(DOMAIN, "link")
                      and not any(k == a or k.startswith(a + os.sep) for a in allowed))

    def outcomes(self, offset, addresses):
        """{address: (dsn, status)} from the log lines since offset ("to=<A>, [orig_to=<..>, ]...")."""
        found = {}
        for m in re.finditer(r"to=<([^>]*)>(?:, orig_to=<[^>]*>)?, relay=[^,]*, delay=[^,]*, "
                             r"dsn=([0-9.]+), status=(\w+)", self.inst.log()[offset:]):
            if m.group(1) in addresses:
                found[m.group(1)] = (m.group(2), m.group(3))
        return found

    def test_hostile_entries_refused(self):
        i = self.inst
        before = self.snapshot()
        offset = len(i.log())
        expected = {"%s@%s" % (l, DOMAIN): (dsn, st) for l, (_, dsn, st) in self.mailboxes.items()}
        expected.update({"%s@%s" % (u, DOMAIN): (dsn, "deferred") for u, (_, dsn) in self.USERS.items()})
        for _, (_, finals) in self.ALIASES.items():
            expected.update({a: (dsn, st) for a, dsn, st in finals})
        rcpts = ["%s@%s" % (l, DOMAIN) for l in list(self.mailboxes) + list(self.USERS) + list(self.ALIASES)]
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            refused = s.sendmail(self.SENDER, rcpts, b"Subject: hostile-map\r\n\r\nx\r\n")
        self.assertEqual(refused, {})
        ok = wait_until(lambda: set(self.outcomes(offset, expected)) == set(expected), timeout=30)
        got = self.outcomes(offset, expected)
        self.assertTrue(ok, "no outcome for %s; log:\n%s" % (sorted(set(expected) - set(got)),
                                                           i.log()[offset:][-4000:]))
        for addr, want in expected.items():
            with self.subTest(recipient=addr):
                self.assertEqual(got.get(addr), want)
            count("hostile map entries tried")
            count("hostile map entries refused (deferred or bounced)", want[1] != "sent")
            count("hostile map entries delivered inside (legal name, bad quota)", want[1] == "sent")
        # the bounce (../x@example.test: 5.1.1) went back to the sender
        self.assertTrue(wait_until(lambda: any(b"Status: 5.1.1" in m for m in maildir_messages(i, "hm-sender")),
                                   timeout=20), i.log()[offset:][-3000:])
        written = self.assert_nothing_outside(before)
        allowed = [os.path.join(DOMAIN, l) for l in ("hm-sender", "hm-q-neg", "hm-q-huge", "hm-q-abc",
                                                     "hm-q-unit", "hm-nel\x85x")]
        self.assertEqual(self.mail_changes(before["mail"], allowed), [], "the mail base changed elsewhere")
        for l in allowed:
            self.assertTrue(os.path.isdir(i.path("mail", l, "new")), l)
        for addr, (dsn, st) in expected.items():
            if st == "deferred" and addr.endswith("@" + DOMAIN):
                self.assertIn(addr, [r["address"] for m in json.loads(i.postctl("queue", "list", "--json"))
                                     for r in m["recipients"]], "%s not in the queue" % addr)
        self.assertEqual(i.crashes(), [])
        FIGURES["hostile map entries that wrote outside the mail base and queue"] = written
        # and mail still flows
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["carol@" + DOMAIN], b"Subject: after-hostile-map\r\n\r\nx\r\n")
        self.assertTrue(wait_until(lambda: any(b"after-hostile-map" in m for m in maildir_messages(i, "carol")),
                                   timeout=20), i.log()[-3000:])

    def test_imap_login_to_a_rewritten_mailbox(self):
        i = self.inst
        before = self.snapshot()
        tried = 0
        for user in self.USERS:
            m = imaplib.IMAP4("127.0.0.1", i.port_base + 143, timeout=30)
            with self.assertRaises(imaplib.IMAP4.error) as e:
                m.login("%s@%s" % (user, DOMAIN), user + "-pw")
            self.assertIn("UNAVAILABLE", str(e.exception))
            # still not authenticated: nothing that touches a mailbox runs
            for command in (b'LIST "" "*"', b"SELECT INBOX", b"CREATE Planted", b"STATUS INBOX (MESSAGES)",
                            b"APPEND INBOX {21+}\r\nSubject: planted\r\n\r\nx"):
                tag = m._new_tag()
                m.send(tag + b" " + command + b"\r\n")
                reply = m.readline()
                self.assertTrue(reply.startswith(tag + b" BAD") or reply.startswith(tag + b" NO"),
                                "%s: %r" % (command, reply))
                tried += 1
            m.shutdown()
            m = imaplib.IMAP4("127.0.0.1", i.port_base + 143, timeout=30)
            plain = ("\0%s@%s\0%s-pw" % (user, DOMAIN, user)).encode()
            with self.assertRaises(imaplib.IMAP4.error):
                m.authenticate("PLAIN", lambda _: plain)
            m.shutdown()
            tried += 2
        self.assertEqual(self.assert_nothing_outside(before), 0)
        self.assertEqual(self.mail_changes(before["mail"], []), [], "a login created something")
        self.assertEqual(i.crashes(), [])
        count("IMAP logins and commands of users with a hostile mailbox entry", tried)

    def test_empty_value_is_refused_by_postctl_map(self):
        i = self.inst
        path = i.path("etc", "virtual_mailboxes")
        db = os.stat(path + ".db")
        text = self.read_table("virtual_mailboxes")
        try:
            for bad in (b"hm-empty@example.test\n", b"hm-empty@example.test \t \n"):
                with open(path, "wb") as f:
                    f.write(text + bad)
                r = i.postctl_raw("map", path)
                self.assertNotEqual(r.returncode, 0, bad)
                self.assertIn("expected format", r.stderr)
                after = os.stat(path + ".db")
                self.assertEqual((db.st_ino, db.st_mtime_ns), (after.st_ino, after.st_mtime_ns),
                                 "a failed compile replaced the table")
                count("hostile map entries tried")
                count("hostile map entries refused (deferred or bounced)")
        finally:
            with open(path, "wb") as f:
                f.write(text)
        c = Client(i.smtp_port)
        c.cmd("EHLO a.test")
        c.cmd("MAIL FROM:<a@outside.test>")
        self.assertEqual(c.cmd("RCPT TO:<hm-empty@example.test>")[0], 550)
        c.close()


def tearDownModule():
    if Instance1.inst is not None:
        Instance1.inst.cleanup()
    print("\nsecurity battery figures:")
    for k in sorted(FIGURES):
        print("  %-68s %s" % (k, FIGURES[k]))


if __name__ == "__main__":
    main()
