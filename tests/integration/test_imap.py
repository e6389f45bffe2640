"""IMAP (imapd): a real instance driven with imaplib, raw sockets and ssl.

Covers the greeting and capabilities, STARTTLS on 143 (and the plaintext
injection defence), implicit TLS on 993, LOGINDISABLED for a client that is
not on the server's own address (connecting from 127.0.0.2), LOGIN and
AUTHENTICATE PLAIN (SASL-IR, continuation, "*" cancel), disabled users,
every mailbox command with its error paths and response codes, LIST with
wildcards / special-use / LIST-EXTENDED, modified UTF-7 and hostile names,
APPEND with flags and date (checked on disk), IDLE seeing a message sent over
SMTP, two sessions seeing each other's APPEND and EXPUNGE, malformed commands
and oversized literals, quota, authd being down, and imapd's confinement.
"""
import os
import re
import smtplib
import socket
import ssl
import imaplib
import time
import unittest

from postern_test import Instance, children_of, cmdline, is_root, main, proc_status, wait_until

DOMAIN = "example.test"
ALICE = "alice@" + DOMAIN


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE             # the instance's certificate is self-signed
    return ctx


class IMAPFrom(imaplib.IMAP4):
    """imaplib from a chosen source address (127.0.0.2 is not the server's address)."""

    def __init__(self, host, port, source):
        self.source = source
        super().__init__(host, port)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout or 30,
                                        source_address=(self.source, 0))


class Raw:
    """A line-level IMAP client: exact bytes out, every response line back."""

    def __init__(self, port, tls=False, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0) if source else None)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data):
        self.sock.sendall(data)

    def line(self, timeout=10):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def cmd(self, tag, text):
        """Send 'tag text', return (tagged line, untagged lines)."""
        self.send(("%s %s\r\n" % (tag, text)).encode())
        return self.until(tag)

    def until(self, tag):
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line, untagged
            untagged.append(line)

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def plain(user, password):
    import base64
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()


class IMAPTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("imap")
        i = cls.inst
        # no brute-force delays: a few deliberate failures must not slow the rest down
        i.set_main_cf(auth_failure_delay="0", auth_lockout_time="0", message_size_limit="1000000")
        i.postctl("domain", "add", DOMAIN)
        for user, extra in (("alice", ["--quota", "10M"]), ("bob", []), ("carol", []),
                            ("dave", ["--quota", "2k"])):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", *extra,
                      input="%s-pw\n" % user)
        i.postctl("user", "disable", "carol@" + DOMAIN)
        i.start()
        cls.imap = i.port_base + 143
        cls.imaps = i.port_base + 993
        assert wait_until(lambda: i.port_open(cls.imap), timeout=10), i.log()
        assert wait_until(lambda: i.log().count("imapd") and "imapd" in i.log(), timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def login(self, user="alice", port=None):
        m = imaplib.IMAP4("127.0.0.1", port or self.imap, timeout=30)
        m.login("%s@%s" % (user, DOMAIN), "%s-pw" % user)
        return m

    def raw_login(self, user="alice"):
        r = Raw(self.imap)
        tagged, _ = r.cmd("L", "LOGIN %s@%s %s-pw" % (user, DOMAIN, user))
        self.assertTrue(tagged.startswith("L OK"), tagged)
        return r

    def maildir(self, user, folder=""):
        return self.inst.path("mail", DOMAIN, user, "." + folder if folder else "")

    # ---- greeting, TLS, login ----

    def test_greeting_and_capabilities(self):
        r = Raw(self.imap)
        self.assertTrue(r.greeting.startswith("* OK [CAPABILITY IMAP4rev1 "), r.greeting)
        self.assertTrue(r.greeting.endswith("] Postern ready."), r.greeting)
        for cap in ("STARTTLS", "AUTH=PLAIN", "SASL-IR", "LITERAL+", "ID", "IDLE"):
            self.assertIn(" " + cap, r.greeting)
        self.assertNotIn("LOGINDISABLED", r.greeting)     # same address: like Dovecot, secured
        tagged, untagged = r.cmd("c", "CAPABILITY")
        self.assertEqual(tagged, "c OK Capability completed.")
        self.assertTrue(untagged[0].startswith("* CAPABILITY IMAP4rev1"))
        tagged, untagged = r.cmd("i", 'ID ("name" "test")')
        self.assertEqual(untagged, ['* ID ("name" "Postern")'])
        tagged, _ = r.cmd("n", "NAMESPACE")
        self.assertTrue(tagged.startswith("n BAD"), tagged)     # not before login
        tagged, _ = r.cmd("o", "LOGOUT")
        self.assertTrue(tagged.startswith("o OK"))
        r.close()

    def test_after_login_capabilities_namespace_enable(self):
        r = self.raw_login()
        tagged, untagged = r.cmd("c", "CAPABILITY")
        caps = untagged[0].split()
        for cap in ("NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE",
                    "LIST-EXTENDED", "LIST-STATUS", "QUOTA", "QUOTA=RES-STORAGE", "CONDSTORE",
                    "ENABLE", "IDLE"):
            self.assertIn(cap, caps)
        self.assertNotIn("STARTTLS", caps)
        self.assertNotIn("AUTH=PLAIN", caps)
        tagged, untagged = r.cmd("n", "NAMESPACE")
        self.assertEqual(untagged, ['* NAMESPACE (("" ".")) NIL NIL'])
        tagged, untagged = r.cmd("e", "ENABLE CONDSTORE X-UNKNOWN")
        self.assertEqual(untagged, ["* ENABLED CONDSTORE"])
        tagged, untagged = r.cmd("s", "SELECT INBOX")
        self.assertTrue(any(l.startswith("* OK [HIGHESTMODSEQ ") for l in untagged), untagged)
        tagged, untagged = r.cmd("s2", "EXAMINE Sent")
        self.assertIn("* OK [CLOSED] Previous mailbox closed.", untagged)
        self.assertTrue(tagged.startswith("s2 OK [READ-ONLY]"), tagged)
        r.close()

    def test_starttls(self):
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=30)
        self.assertIn("STARTTLS", m.capabilities)
        m.starttls(ssl_context=tls_context())
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertEqual(m.login(ALICE, "alice-pw")[0], "OK")
        m.logout()
        self.assertTrue(wait_until(lambda: re.search(
            r"imapd\[\d+\]: login: user=<alice@example.test>, method=LOGIN, rip=127.0.0.1, "
            r"lip=127.0.0.1, TLS", self.inst.log())), self.inst.log()[-3000:])

    def test_starttls_discards_pipelined_plaintext(self):
        r = Raw(self.imap)
        # the injection attack: a command behind STARTTLS in the same packet
        r.send(b"a1 STARTTLS\r\na2 LOGIN alice@example.test alice-pw\r\n")
        self.assertEqual(r.line(), "a1 OK Begin TLS negotiation now.")
        r.starttls()
        tagged, untagged = r.cmd("a3", "NOOP")
        self.assertEqual(untagged, [])      # nothing for a2
        self.assertEqual(tagged, "a3 OK NOOP completed.")
        tagged, _ = r.cmd("a4", "CAPABILITY")
        tagged, _ = r.cmd("a5", "SELECT INBOX")
        self.assertTrue(tagged.startswith("a5 BAD"), tagged)    # still not logged in
        tagged, _ = r.cmd("a6", "STARTTLS")
        self.assertTrue(tagged.startswith("a6 BAD"), tagged)
        r.close()

    def test_implicit_tls_993(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=tls_context(), timeout=30)
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.assertEqual(m.login(ALICE, "alice-pw")[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        m.logout()

    def test_logindisabled_for_other_address(self):
        m = IMAPFrom("127.0.0.1", self.imap, "127.0.0.2")
        self.assertIn("LOGINDISABLED", m.capabilities)
        self.assertNotIn("AUTH=PLAIN", m.capabilities)
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login(ALICE, "alice-pw")
        self.assertIn("PRIVACYREQUIRED", str(cm.exception))
        typ, data = m._simple_command("AUTHENTICATE", "PLAIN", plain(ALICE, "alice-pw"))
        self.assertEqual(typ, "NO")
        self.assertIn(b"PRIVACYREQUIRED", data[0])
        m.starttls(ssl_context=tls_context())
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        self.assertEqual(m.login(ALICE, "alice-pw")[0], "OK")
        m.logout()

    def test_login_failures(self):
        r = Raw(self.imap)
        tagged, _ = r.cmd("a", "LOGIN alice@example.test wrong")
        self.assertEqual(tagged, "a NO [AUTHENTICATIONFAILED] Authentication failed.")
        tagged, _ = r.cmd("b", "LOGIN nobody@example.test x")
        self.assertEqual(tagged, "b NO [AUTHENTICATIONFAILED] Authentication failed.")
        tagged, _ = r.cmd("c", "LOGIN carol@example.test carol-pw")     # disabled
        self.assertEqual(tagged, "c NO [AUTHENTICATIONFAILED] Authentication failed.")
        tagged, _ = r.cmd("d", "LOGIN onlyone")
        self.assertTrue(tagged.startswith("d BAD"), tagged)
        tagged, _ = r.cmd("e", 'LOGIN "alice@example.test" "alice-pw"')
        self.assertTrue(tagged.startswith("e OK [CAPABILITY IMAP4rev1"), tagged)
        tagged, _ = r.cmd("f", "LOGIN alice@example.test alice-pw")
        self.assertTrue(tagged.startswith("f BAD"), tagged)     # already logged in
        r.close()

    def test_authenticate_plain(self):
        # SASL-IR (RFC 4959)
        r = Raw(self.imap)
        tagged, _ = r.cmd("a", "AUTHENTICATE PLAIN " + plain(ALICE, "alice-pw"))
        self.assertTrue(tagged.startswith("a OK [CAPABILITY"), tagged)
        r.close()
        # continuation, then "*" cancels
        r = Raw(self.imap)
        r.send(b"b AUTHENTICATE PLAIN\r\n")
        self.assertEqual(r.line(), "+ ")
        r.send(b"*\r\n")
        self.assertTrue(r.line().startswith("b BAD"))
        r.send(b"c AUTHENTICATE PLAIN\r\n")
        self.assertEqual(r.line(), "+ ")
        r.send(b"not base64!\r\n")
        self.assertTrue(r.line().startswith("c BAD"))
        tagged, _ = r.cmd("d", "AUTHENTICATE CRAM-MD5")
        self.assertTrue(tagged.startswith("d NO"), tagged)
        tagged, _ = r.cmd("e", "AUTHENTICATE PLAIN " + plain(ALICE, "bad"))
        self.assertEqual(tagged, "e NO [AUTHENTICATIONFAILED] Authentication failed.")
        r.close()
        # imaplib's continuation form
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=30)
        typ, _ = m.authenticate("PLAIN", lambda _: b"\0" + ALICE.encode() + b"\0alice-pw")
        self.assertEqual(typ, "OK")
        m.logout()

    # ---- mailboxes ----

    def test_select_examine_and_errors(self):
        r = self.raw_login("bob")
        tagged, untagged = r.cmd("s", "SELECT inbox")
        self.assertTrue(tagged.startswith("s OK [READ-WRITE]"), tagged)
        self.assertIn("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)", untagged)
        self.assertTrue(any(re.match(r"\* \d+ EXISTS$", l) for l in untagged))
        self.assertTrue(any(re.match(r"\* \d+ RECENT$", l) for l in untagged))
        self.assertTrue(any(re.match(r"\* OK \[UIDVALIDITY \d+\]", l) for l in untagged))
        self.assertTrue(any(re.match(r"\* OK \[UIDNEXT \d+\]", l) for l in untagged))
        self.assertTrue(any(l.startswith("* OK [PERMANENTFLAGS (") and "\\*" in l for l in untagged))
        tagged, _ = r.cmd("c", "CHECK")
        self.assertTrue(tagged.startswith("c OK"))
        tagged, _ = r.cmd("u", "UNSELECT")
        self.assertTrue(tagged.startswith("u OK"))
        tagged, _ = r.cmd("c2", "CHECK")
        self.assertTrue(tagged.startswith("c2 BAD"))            # nothing selected
        tagged, untagged = r.cmd("e", "EXAMINE Trash")
        self.assertTrue(tagged.startswith("e OK [READ-ONLY]"), tagged)
        self.assertIn("* OK [PERMANENTFLAGS ()] Flags permitted.", untagged)
        tagged, _ = r.cmd("x", "SELECT NoSuchFolder")
        self.assertTrue(tagged.startswith("x NO [NONEXISTENT]"), tagged)
        tagged, _ = r.cmd("c3", "CLOSE")
        self.assertTrue(tagged.startswith("c3 BAD"), tagged)    # the failed SELECT closed Trash
        r.close()

    def test_create_delete_rename_subscribe(self):
        m = self.login("bob")
        self.assertEqual(m.create("Projects.")[0], "OK")        # trailing separator
        self.assertTrue(os.path.isdir(os.path.join(self.maildir("bob", "Projects"), "cur")))
        typ, data = m.create("Projects")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[ALREADYEXISTS]", data[0])
        typ, data = m.create("INBOX")
        self.assertIn(b"[ALREADYEXISTS]", data[0])
        self.assertEqual(m.create("Projects.2024")[0], "OK")
        self.assertEqual(m.rename("Projects.2024", "Projects.Old")[0], "OK")
        typ, data = m.rename("Nope", "Other")
        self.assertIn(b"[NONEXISTENT]", data[0])
        typ, data = m.rename("Projects", "Sent")
        self.assertIn(b"[ALREADYEXISTS]", data[0])
        typ, data = m.delete("Nope")
        self.assertIn(b"[NONEXISTENT]", data[0])
        typ, data = m.delete("INBOX")
        self.assertEqual(typ, "NO")
        self.assertEqual(m.subscribe("Projects")[0], "OK")
        typ, data = m.lsub('""', "*")
        self.assertIn(b'() "." "Projects"', data)
        self.assertIn(b'() "." "Sent"', data)                  # auto-subscribed at first login
        self.assertEqual(m.unsubscribe("Projects")[0], "OK")
        typ, data = m.lsub('""', "Proj*")
        self.assertEqual(data, [None])
        self.assertEqual(m.delete("Projects.Old")[0], "OK")
        self.assertFalse(os.path.exists(self.maildir("bob", "Projects.Old")))
        m.logout()

    def test_special_use_folders_created(self):
        m = self.login("bob")
        typ, data = m.list()
        names = {d.decode() for d in data}
        for folder, use in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash"),
                            ("Junk", "\\Junk")):
            self.assertIn('(\\HasNoChildren %s) "." "%s"' % (use, folder), names)
            self.assertTrue(os.path.isdir(self.maildir("bob", folder)))
        m.logout()

    def test_list(self):
        m = self.login("alice")
        for name in ("Work", "Work.Reports", "Work.Reports.Q1", "Lonely.Child"):
            self.assertEqual(m.create(name)[0], "OK")
        typ, data = m.list('""', '""')
        self.assertEqual(data, [b'(\\Noselect) "." ""'])
        typ, data = m.list('""', "%")
        top = [d.decode() for d in data]
        self.assertIn('(\\HasChildren) "." "Work"', top)
        self.assertIn('(\\Noselect \\HasChildren) "." "Lonely"', top)   # a missing parent
        self.assertNotIn('"Work.Reports"', " ".join(top))
        typ, data = m.list('""', "Work.*")
        self.assertEqual([d.decode() for d in data],
                         ['(\\HasChildren) "." "Work.Reports"',
                          '(\\HasNoChildren) "." "Work.Reports.Q1"'])
        typ, data = m.list("Work.", "%")
        self.assertEqual(data, [b'(\\HasChildren) "." "Work.Reports"'])
        typ, data = m.list('""', "inbox")
        self.assertEqual(data, [b'(\\HasNoChildren) "." "INBOX"'])
        typ, data = m.list('""', "W*s")
        self.assertEqual(data, [b'(\\HasChildren) "." "Work.Reports"'])
        # LIST-EXTENDED and SPECIAL-USE
        typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
        typ, data = m._untagged_response(typ, data, "LIST")
        self.assertEqual(sorted(d.decode() for d in data),
                         ['(\\HasNoChildren \\Drafts) "." "Drafts"',
                          '(\\HasNoChildren \\Junk) "." "Junk"',
                          '(\\HasNoChildren \\Sent) "." "Sent"',
                          '(\\HasNoChildren \\Trash) "." "Trash"'])
        self.assertEqual(m.subscribe("Work.Reports.Q1")[0], "OK")
        typ, data = m._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "Work%")
        typ, data = m._untagged_response(typ, data, "LIST")
        self.assertEqual(data, [b'(\\HasChildren) "." "Work" ("CHILDINFO" ("SUBSCRIBED"))'])
        typ, data = m._simple_command("LIST", '""', "Work.Reports.Q1", "RETURN",
                                      "(SUBSCRIBED CHILDREN STATUS (MESSAGES UIDNEXT))")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.untagged_responses.pop("LIST"),
                         [b'(\\HasNoChildren \\Subscribed) "." "Work.Reports.Q1"'])
        self.assertEqual(m.untagged_responses.pop("STATUS"),
                         [b'"Work.Reports.Q1" (MESSAGES 0 UIDNEXT 1)'])
        typ, data = m._simple_command("LIST", '""', '("Work" "Sent")')
        typ, data = m._untagged_response(typ, data, "LIST")
        self.assertEqual(len(data), 2)
        with self.assertRaisesRegex(imaplib.IMAP4.error, "BAD"):
            m._simple_command("LIST", "(RECURSIVEMATCH)", '""', "*")
        m.logout()

    def test_mutf7_and_hostile_names(self):
        m = self.login("bob")
        self.assertEqual(m.create("&ZeVnLIqe-")[0], "OK")        # Japanese, modified UTF-7
        self.assertTrue(os.path.isdir(self.maildir("bob", "&ZeVnLIqe-")))
        typ, data = m.list('""', "&ZeVnLIqe-")
        self.assertEqual(data, [b'(\\HasNoChildren) "." "&ZeVnLIqe-"'])
        self.assertEqual(m.create("Caf&AOk-.Men&APw-")[0], "OK")
        typ, data = m.status("Caf&AOk-.Men&APw-", "(MESSAGES)")
        self.assertEqual(typ, "OK")
        self.assertEqual(m.create("A&-B")[0], "OK")             # "&" is written "&-"
        for bad in ('"../x"', '"a/b"', '"~root"', "..", '".hidden"', '"a..b"', '"&AGE-"',
                    '"&Jjo"', '"INBOX.sub"', '"x\\\\y"'):
            typ, data = m.create(bad)
            self.assertEqual(typ, "NO", bad)
            self.assertIn(b"[CANNOT]", data[0], bad)
            typ, data = m.select(bad)
            self.assertEqual(typ, "NO", bad)
        # 8-bit bytes (raw UTF-8) are not a modified UTF-7 name
        r = self.raw_login("bob")
        r.send(b"x CREATE {5+}\r\ncaf\xc3\xa9\r\n")
        self.assertTrue(r.until("x")[0].startswith("x NO [CANNOT]"))
        r.close()
        # nothing escaped the user's directory
        base = self.inst.path("mail")
        for entry in ("x", "root", "b"):
            self.assertFalse(os.path.exists(os.path.join(base, entry)))
        self.assertFalse(os.path.exists(os.path.join(base, DOMAIN, "x")))
        m.logout()

    def test_append_flags_date_and_errors(self):
        m = self.login("bob")
        self.assertEqual(m.create("Archive")[0], "OK")
        msg = b"From: a@b.test\r\nSubject: appended\r\n\r\nhello\r\n"
        typ, data = m.append("Archive", r"(\Seen \Flagged $Label1)",
                             '"14-Jul-2021 02:44:25 +0200"', msg)
        self.assertEqual(typ, "OK")
        self.assertRegex(data[0].decode(), r"^\[APPENDUID \d+ 1\] Append completed\.$")
        cur = os.path.join(self.maildir("bob", "Archive"), "cur")
        files = os.listdir(cur)
        self.assertEqual(len(files), 1, files)
        self.assertTrue(files[0].endswith(":2,FSa"), files[0])  # letters sorted, keyword a
        self.assertEqual(int(os.stat(os.path.join(cur, files[0])).st_mtime), 1626223465)
        with open(os.path.join(cur, files[0]), "rb") as f:
            self.assertEqual(f.read(), msg.replace(b"\r\n", b"\n"))
        typ, data = m.append("Archive", None, None, msg)
        self.assertRegex(data[0].decode(), r"^\[APPENDUID \d+ 2\]")
        typ, data = m.append("Missing", None, None, msg)
        self.assertEqual(typ, "NO")
        self.assertIn(b"[TRYCREATE]", data[0])
        with self.assertRaisesRegex(imaplib.IMAP4.error, "BAD"):
            m.append("Archive", r"(\Recent)", None, msg)
        with self.assertRaisesRegex(imaplib.IMAP4.error, "BAD"):
            m.append("Archive", None, '"not a date"', msg)
        typ, data = m.status("Archive", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE)")
        self.assertRegex(data[0].decode(), r'^"Archive" \(MESSAGES 2 RECENT \d UIDNEXT 3 '
                         r'UIDVALIDITY \d+ UNSEEN 1 SIZE %d\)$' % (2 * len(msg)))
        typ, data = m.status("Nope", "(MESSAGES)")
        self.assertIn(b"[NONEXISTENT]", data[0])
        with self.assertRaisesRegex(imaplib.IMAP4.error, "BAD"):
            m.status("Archive", "(BOGUS)")
        m.logout()

    def test_quota(self):
        m = self.login("alice")
        typ, data = m.getquotaroot("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(data[0], [b'"INBOX" "User quota"'])
        self.assertRegex(data[1][0].decode(), r'^"User quota" \(STORAGE \d+ 10240\)$')
        typ, data = m.getquota('"User quota"')
        self.assertEqual(typ, "OK")
        typ, data = m.setquota('"User quota"', "(STORAGE 1)")
        self.assertEqual(typ, "NO")
        m.logout()
        m = self.login("dave")                                  # 2k quota
        typ, data = m.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"x" * 4000 + b"\r\n")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[OVERQUOTA]", data[0])
        m.logout()

    def test_two_sessions_see_each_other(self):
        a = self.raw_login("bob")
        b = self.raw_login("bob")
        self.assertEqual(b.cmd("c", "CREATE Shared")[0], "c OK Create completed.")
        tagged, untagged = a.cmd("s", "SELECT Shared")
        self.assertIn("* 0 EXISTS", untagged)
        tagged, untagged = b.cmd("s", "SELECT Shared")
        b.send(b"p APPEND Shared (\\Deleted) {20+}\r\nSubject: x\r\n\r\nbody\r\n\r\n")
        tagged, untagged = b.until("p")
        self.assertTrue(tagged.startswith("p OK [APPENDUID"), tagged)
        self.assertIn("* 1 EXISTS", untagged)                   # its own append, before the OK
        self.assertIn("* 1 RECENT", untagged)                   # B saw it first: B's \Recent
        tagged, untagged = a.cmd("n", "NOOP")
        self.assertIn("* 1 EXISTS", untagged)
        self.assertIn("* 0 RECENT", untagged)
        tagged, untagged = b.cmd("x", "CLOSE")                  # expunges the \Deleted message
        self.assertEqual(tagged, "x OK Close completed.")
        tagged, untagged = a.cmd("n2", "NOOP")
        self.assertIn("* 1 EXPUNGE", untagged)
        a.close()
        b.close()

    def test_idle_sees_smtp_delivery(self):
        r = self.raw_login("alice")
        tagged, untagged = r.cmd("s", "SELECT INBOX")
        exists = int([l for l in untagged if l.endswith(" EXISTS")][0].split()[1])
        r.send(b"i IDLE\r\n")
        self.assertEqual(r.line(), "+ idling")
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.sendmail("someone@outside.test", [ALICE],
                       b"From: someone@outside.test\r\nSubject: idle test\r\n\r\nhi\r\n")
        sent = time.time()
        line = r.line(timeout=10)
        self.assertEqual(line, "* %d EXISTS" % (exists + 1))
        # the delivery itself takes queue + virtual; the notice follows it closely
        self.assertLess(time.time() - sent, 5)
        r.send(b"DONE\r\n")
        tagged, _ = r.until("i")
        self.assertEqual(tagged, "i OK Idle completed.")
        r.send(b"j IDLE\r\n")
        self.assertEqual(r.line(), "+ idling")
        r.send(b"nonsense\r\n")
        self.assertEqual(r.until("j")[0], "j BAD Expected DONE.")
        r.close()

    def test_malformed_commands_keep_connection(self):
        r = self.raw_login("bob")
        for i, text in enumerate(["FROBNICATE", "SELECT", 'LIST "" (', "UID FROB 1",
                                  "STATUS INBOX MESSAGES", 'CREATE "unterminated',
                                  "LOGIN a b", "FETCH 1 FLAGS", "APPEND INBOX (\\Bogus) {1+}\r\nx"]):
            tag = "m%d" % i
            tagged, _ = r.cmd(tag, text)
            self.assertTrue(tagged.startswith(tag + " BAD"), "%r -> %r" % (text, tagged))
        tagged, _ = r.cmd("ok", "NOOP")
        self.assertEqual(tagged, "ok OK NOOP completed.")
        r.send(b"\r\n(\r\n")                                  # an empty line, no tag
        self.assertEqual(r.cmd("ok2", "NOOP")[0], "ok2 OK NOOP completed.")
        r.close()

    def test_huge_literals(self):
        r = Raw(self.imap)
        # before login, literals are small: a LITERAL+ one is read and thrown away
        r.send(b"a LOGIN {100000+}\r\n" + b"x" * 100000 + b" pw\r\n")
        tagged = r.line()
        self.assertTrue(tagged.startswith("a BAD"), tagged)
        self.assertEqual(r.cmd("b", "NOOP")[0], "b OK NOOP completed.")
        # a synchronizing one is refused without "+", so it is never sent
        r.send(b"c LOGIN {999999999}\r\n")
        tagged = r.line()
        self.assertTrue(tagged.startswith("c BAD"), tagged)
        self.assertEqual(r.cmd("d", "NOOP")[0], "d OK NOOP completed.")
        tagged, _ = r.cmd("L", "LOGIN bob@example.test bob-pw")
        self.assertTrue(tagged.startswith("L OK"), tagged)
        # after login: APPEND beyond message_size_limit
        r.send(b"e APPEND INBOX {5000000}\r\n")
        tagged = r.line()
        self.assertTrue(tagged.startswith("e NO [TOOBIG]"), tagged)
        self.assertEqual(r.cmd("f", "NOOP")[0], "f OK NOOP completed.")
        # a synchronizing literal within limits gets its "+"
        r.send(b"g APPEND INBOX {12}\r\n")
        self.assertTrue(r.line().startswith("+ "))
        r.send(b"Subject: s\r\n\r\n")
        tagged, _ = r.until("g")
        self.assertTrue(tagged.startswith("g OK [APPENDUID"), tagged)
        r.close()

    @unittest.skipUnless(is_root(), "privilege separation is tested as root")
    def test_imapd_is_confined(self):
        i = self.inst
        Raw(self.imap).close()
        pids = [p for p in children_of(i.master_pid())
                if os.path.basename(cmdline(p)[0]) == "imapd"]
        self.assertEqual(len(pids), 2, "one imapd for 143 and one for 993")
        for pid in pids:
            st = proc_status(pid)
            self.assertNotIn("0", st["Uid"].split())
            self.assertNotIn("0", st["Gid"].split())
            for cap in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, "%s=%s" % (cap, st[cap]))
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(os.readlink("/proc/%d/root" % pid), os.path.realpath(i.path("mail")))
            import pwd
            self.assertEqual(int(st["Uid"].split()[0]), pwd.getpwnam("vmail").pw_uid)

    def test_memory_per_idle_session(self):
        """Many logged-in idle sessions cost little (DESIGN: event-driven imapd)."""
        i = self.inst
        pid = None
        conns = []
        for n in range(200):
            r = self.raw_login("bob")
            conns.append(r)
            if pid is None:
                for p in children_of(i.master_pid()):
                    if os.path.basename(cmdline(p)[0]) == "imapd" and "imapd_tls_wrappermode=yes" \
                            not in " ".join(cmdline(p)):
                        pid = p
        self.assertIsNotNone(pid)
        with open("/proc/%d/maps" % pid) as f:
            if "libasan" in f.read():
                for r in conns:
                    r.close()
                self.skipTest("AddressSanitizer's redzones and quarantine inflate memory")

        def rss():
            return int(proc_status(pid)["VmRSS"].split()[0])
        before = rss()
        for n in range(200):
            r = self.raw_login("bob")
            r.cmd("s", "SELECT INBOX")
            conns.append(r)
        after = rss()
        per_session = (after - before) * 1024 / 200
        self.assertLess(per_session, 100 * 1024, "%d bytes per idle session" % per_session)
        print("imapd: %d bytes per logged-in idle session (RSS)" % per_session)
        for r in conns:
            r.close()


class AuthdDownTest(unittest.TestCase):
    def setUp(self):
        self.inst = Instance("imapnoauth")

    def tearDown(self):
        self.inst.cleanup()

    def test_logins_unavailable_without_authd(self):
        i = self.inst
        path = os.path.join(i.config_dir, "master.cf")
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if not l.startswith("auth")]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        i.start()
        port = i.port_base + 143
        self.assertTrue(wait_until(lambda: i.port_open(port), timeout=10), i.log())
        r = Raw(port)
        self.assertTrue(r.greeting.startswith("* OK"))
        tagged, _ = r.cmd("a", "LOGIN alice@example.test pw")
        self.assertTrue(tagged.startswith("a NO [UNAVAILABLE]"), tagged)
        tagged, _ = r.cmd("b", "AUTHENTICATE PLAIN " + plain("alice@example.test", "pw"))
        self.assertTrue(tagged.startswith("b NO [UNAVAILABLE]"), tagged)
        r.close()


if __name__ == "__main__":
    main()
