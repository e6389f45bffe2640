"""IMAP message commands (imapd_fetch.c, imapd_search.c, imapd_store.c) on a
real instance, driven with imaplib and a raw line client.

Covers FETCH of every RFC 3501 item against a MIME corpus
(tests/integration/mime_corpus/: NAME.eml and NAME.expect.json with the
ENVELOPE, BODYSTRUCTURE, BODY and section answers, written from RFC 3501
7.4.2 and identical to what Dovecot 2.3 answers for the same files), partial
fetches, the byte-exact APPEND/FETCH round trip, \\Seen set by BODY[] and not
by BODY.PEEK[], CONDSTORE (MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE), SEARCH
for every key family and ESEARCH, STORE, COPY/MOVE with COPYUID, TRYCREATE
and OVERQUOTA (nothing half copied), EXPUNGE seen by a second session only
at its next allowed point, bad sets and items (BAD, connection still usable),
and a 2000-message FETCH 1:* BODY[] read slowly (flow control) with every
byte checked.
"""
import glob
import imaplib
import json
import os
import re
import smtplib
import socket
import time
import unittest

from postern_test import Instance, children_of, cmdline, main, proc_status, wait_until

DOMAIN = "example.test"
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mime_corpus")


def crlf(data):
    """LF or CRLF text -> CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def raw(data):
    """imaplib's response list back into the bytes the server sent (literals inline)."""
    out = b""
    for d in data:
        if isinstance(d, tuple):
            out += d[0] + b"\r\n" + d[1]
        elif d is not None:
            out += d
    return out


def corpus_names():
    return sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(CORPUS, "*.eml")))


def corpus_message(name):
    with open(os.path.join(CORPUS, name + ".eml"), "rb") as f:
        return crlf(f.read())


class Raw:
    """A line-level IMAP client: exact bytes out, every response line back."""

    def __init__(self, port, user):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.greeting = self.line()
        tagged, _ = self.cmd("L", "LOGIN %s@%s %s-pw" % (user, DOMAIN, user))
        assert tagged.startswith("L OK"), tagged

    def line(self, timeout=30):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf[-200:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_exact(self, n, timeout=30):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def cmd(self, tag, text):
        """Send 'tag text', return (tagged line, untagged lines)."""
        self.sock.sendall(("%s %s\r\n" % (tag, text)).encode())
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line, untagged
            untagged.append(line)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class ImapFetchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("imapfetch")
        i = cls.inst
        i.set_main_cf(auth_failure_delay="0", auth_lockout_time="0", message_size_limit="20000000",
                      mynetworks="127.0.0.1/32")
        master_cf = os.path.join(i.config_dir, "master.cf")
        with open(master_cf) as f:
            text = f.read()
        if "imapd" not in text:     # until the default master.cf has the IMAP service
            with open(master_cf, "a") as f:
                f.write("%d inet n - y - - imapd\n" % (i.port_base + 143))
        i.postctl("domain", "add", DOMAIN)
        for user, extra in (("alice", []), ("bob", []), ("dave", ["--quota", "3k"]),
                            ("erin", [])):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", *extra,
                      input="%s-pw\n" % user)
        i.start()
        cls.imap = i.port_base + 143
        assert wait_until(lambda: i.port_open(cls.imap), timeout=15), i.log()[-3000:]

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def login(self, user="alice"):
        m = imaplib.IMAP4("127.0.0.1", self.imap, timeout=60)
        m.login("%s@%s" % (user, DOMAIN), "%s-pw" % user)
        return m

    def folder(self, m, name, messages, flags=None, date=None):
        """A fresh folder holding messages (appended in order); selected."""
        typ, _ = m.create(name)
        self.assertEqual(typ, "OK")
        for msg in messages:
            typ, d = m.append(name, flags, date, msg)
            self.assertEqual(typ, "OK", d)
        typ, d = m.select(name)
        self.assertEqual(typ, "OK", d)
        return int(d[0])

    def fetch(self, m, seq, items, uid=False):
        typ, d = m.uid("FETCH", seq, items) if uid else m.fetch(seq, items)
        self.assertEqual(typ, "OK", d)
        return raw(d)

    def flags(self, m, seq):
        r = self.fetch(m, seq, "(FLAGS)")
        # \Recent depends on which session looked first; the tests that care check it directly
        return [f for f in re.search(rb"FLAGS \(([^)]*)\)", r).group(1).decode().split() if f != "\\Recent"]

    def search(self, m, *criteria, charset=None):
        typ, d = m.search(charset, *criteria)
        self.assertEqual(typ, "OK", (criteria, d))
        return [int(x) for x in d[0].split()]

    # ---- FETCH ----

    def test_header_cache_never_crosses_messages(self):
        """The envelope cache of the imapd process (all these sessions share it) gives each
        user, folder and UID its own message: alice's and bob's UID 1 in folders of the same
        name, and a folder deleted and made again with a new message under UID 1."""
        def envelope_subject(m):
            r = self.fetch(m, "1", "(ENVELOPE)")
            return re.search(rb'ENVELOPE \((?:NIL|"[^"]*") "([^"]*)"', r).group(1).decode()

        msg = "From: x@example.org\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n\r\nbody\r\n"
        a, b = self.login("alice"), self.login("bob")
        self.folder(a, "CacheX", [(msg % ("alice-one", "a1")).encode()])
        self.folder(b, "CacheX", [(msg % ("bob-one", "b1")).encode()])
        for _ in range(2):              # the second round comes from the cache
            self.assertEqual(envelope_subject(a), "alice-one")
            self.assertEqual(envelope_subject(b), "bob-one")
            self.assertEqual(self.search(a, "SUBJECT", "bob-one"), [])
            self.assertEqual(self.search(b, "SUBJECT", "bob-one"), [1])
            self.assertEqual(self.search(a, "HEADER", "Message-ID", "a1@"), [1])
            self.assertEqual(self.search(b, "HEADER", "Message-ID", "a1@"), [])
        a.select("INBOX")
        self.assertEqual(a.delete("CacheX")[0], "OK")
        self.folder(a, "CacheX", [(msg % ("alice-two", "a2")).encode()])
        self.assertEqual(envelope_subject(a), "alice-two")
        self.assertEqual(self.search(a, "SUBJECT", "alice-one"), [])
        self.assertEqual(self.search(a, "SUBJECT", "alice-two"), [1])
        # a header field the cache does not hold is still searched in the file
        self.assertEqual(self.search(a, "HEADER", "Content-Type", '""'), [])
        self.assertEqual(self.search(a, "HEADER", "From", "x@example"), [1])
        a.logout()
        b.logout()

    def test_corpus_structures_and_sections(self):
        m = self.login()
        names = corpus_names()
        self.assertGreaterEqual(len(names), 5)
        self.folder(m, "Corpus", [corpus_message(n) for n in names])
        for seq, name in enumerate(names, 1):
            with open(os.path.join(CORPUS, name + ".expect.json"), encoding="utf-8") as f:
                expect = json.load(f)
            self.assertIn("BODYSTRUCTURE", expect)
            self.assertIn("ENVELOPE", expect)
            for item, want in expect.items():
                request = item.replace("BODY[", "BODY.PEEK[")
                got = self.fetch(m, str(seq), "(%s)" % request)
                self.assertEqual(got.decode("utf-8"), "%d (%s)" % (seq, want),
                                 "%s: %s" % (name, item))
            # the whole message comes back as it went in
            whole = self.fetch(m, str(seq), "(BODY.PEEK[])")
            msg = corpus_message(name)
            self.assertEqual(whole, b"%d (BODY[] {%d}\r\n%s)" % (seq, len(msg), msg))
        # several items at once, in one response, UID first for UID FETCH
        got = self.fetch(m, "1", "(RFC822.SIZE BODY.PEEK[1] FLAGS)", uid=True).decode()
        self.assertRegex(got, re.compile(r"^1 \(UID 1 RFC822\.SIZE \d+ BODY\[1\] \{\d+\}\r\n.* FLAGS \(\\Recent\)\)$",
                                         re.S))
        m.logout()

    def test_append_fetch_round_trip(self):
        m = self.login()
        body = b"".join(b"line %04d \xc3\xa9\xe2\x82\xac with some text to make it longer\r\n" % i
                        for i in range(300))
        msg = (b"From: Round Trip <rt@example.test>\r\nTo: alice@example.test\r\n"
               b"Subject: round trip\r\nX-Long: " + b"x" * 900 + b"\r\n\r\n" + body)
        self.folder(m, "Round", [msg], date='"17-Jul-1996 02:44:25 -0700"')
        self.assertEqual(self.fetch(m, "1", "(BODY.PEEK[])"), b"1 (BODY[] {%d}\r\n%s)" % (len(msg), msg))
        self.assertEqual(self.fetch(m, "1", "(RFC822.SIZE)"), b"1 (RFC822.SIZE %d)" % len(msg))
        self.assertEqual(self.fetch(m, "1", "(INTERNALDATE)"),
                         b'1 (INTERNALDATE "17-Jul-1996 09:44:25 +0000")')
        hdr_end = msg.index(b"\r\n\r\n") + 4
        self.assertEqual(self.fetch(m, "1", "(RFC822.HEADER)"),
                         b"1 (RFC822.HEADER {%d}\r\n%s)" % (hdr_end, msg[:hdr_end]))
        self.assertEqual(self.flags(m, "1"), [])        # RFC822.HEADER is a peek
        for off, cnt in ((0, 1), (0, 100), (17, 4000), (len(msg) - 5, 100), (len(msg), 10),
                         (len(msg) + 100, 10), (1000, 0)):
            got = self.fetch(m, "1", "(BODY.PEEK[]<%d.%d>)" % (off, cnt))
            part = msg[off:off + cnt]
            self.assertEqual(got, b"1 (BODY[]<%d> {%d}\r\n%s)" % (off, len(part), part), (off, cnt))
        got = self.fetch(m, "1", "(BODY.PEEK[TEXT]<10.20>)")
        self.assertEqual(got, b"1 (BODY[TEXT]<10> {20}\r\n%s)" % body[10:30])
        # RFC822.TEXT is the body and sets \Seen
        got = self.fetch(m, "1", "(RFC822.TEXT)")
        self.assertEqual(got, b"1 (RFC822.TEXT {%d}\r\n%s FLAGS (\\Seen \\Recent))" % (len(body), body))
        self.assertIn(b"FLAGS (\\Seen \\Recent)", got)
        m.logout()

    def test_seen_set_by_body_not_by_peek(self):
        m = self.login()
        msg = corpus_message("plain")
        self.folder(m, "SeenBox", [msg, msg, msg])
        self.fetch(m, "1", "(BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[1] RFC822.HEADER)")
        self.assertEqual(self.flags(m, "1"), [])
        got = self.fetch(m, "1", "(BODY[1])")
        self.assertIn(b"FLAGS (\\Seen \\Recent)", got)       # the implied change is reported
        self.assertEqual(self.flags(m, "1"), ["\\Seen"])
        got = self.fetch(m, "2", "(RFC822)")
        self.assertTrue(got.startswith(b"2 (RFC822 {%d}\r\n" % len(msg)), got[:60])
        self.assertEqual(self.flags(m, "2"), ["\\Seen"])
        # already seen: no FLAGS added
        got = self.fetch(m, "1", "(BODY[1])")
        self.assertNotIn(b"FLAGS", got)
        # read-only: nothing changes
        m.select("SeenBox", readonly=True)
        self.fetch(m, "3", "(BODY[])")
        self.assertEqual(self.flags(m, "3"), [])
        m.select("SeenBox")
        self.assertEqual(self.flags(m, "3"), [])
        m.logout()

    def test_macros_uid_and_envelope_only(self):
        m = self.login()
        self.folder(m, "Macros", [corpus_message("plain"), corpus_message("alternative")])
        all_ = self.fetch(m, "1", "ALL").decode()
        for item in ("FLAGS (", "INTERNALDATE \"", "RFC822.SIZE ", "ENVELOPE (\"Mon, 7 Feb 1994"):
            self.assertIn(item, all_)
        self.assertNotIn("BODY", all_)
        fast = self.fetch(m, "1", "FAST").decode()
        self.assertNotIn("ENVELOPE", fast)
        self.assertIn("RFC822.SIZE", fast)
        full = self.fetch(m, "2", "FULL").decode()
        self.assertIn('BODY (("text" "plain"', full)
        self.assertNotIn("BODYSTRUCTURE", full)
        # UID FETCH always includes UID; UID item alone
        self.assertEqual(self.fetch(m, "1:*", "(FLAGS)", uid=True), b"1 (UID 1 FLAGS (\\Recent))2 (UID 2 FLAGS (\\Recent))")
        self.assertEqual(self.fetch(m, "2", "(UID)"), b"2 (UID 2)")
        # UIDs beyond the last are ignored; a UID range reaching past the end gives what exists
        self.assertEqual(self.fetch(m, "5:9", "(FLAGS)", uid=True), b"")
        self.assertEqual(self.fetch(m, "2:9", "(FLAGS)", uid=True), b"2 (UID 2 FLAGS (\\Recent))")
        self.assertEqual(self.fetch(m, "*", "(UID)", uid=True), b"2 (UID 2)")
        m.logout()

    def test_bad_sets_and_items_keep_connection(self):
        r = Raw(self.imap, "alice")
        m = self.login()
        self.folder(m, "Bad", [corpus_message("plain")] * 2)
        m.logout()
        tagged, _ = r.cmd("s", "SELECT Bad")
        self.assertTrue(tagged.startswith("s OK"), tagged)
        for n, text in enumerate(["FETCH 0 FLAGS", "FETCH 3 FLAGS", "FETCH 1:9 FLAGS", "FETCH a FLAGS",
                                  "FETCH 1,,2 FLAGS", "FETCH 1 (FOO)", "FETCH 1 ()", "FETCH 1 BODY[x]",
                                  "FETCH 1 BODY[HEADER.FIELDS ()]", "FETCH 1 (BODY[1)", "FETCH 1 BODY[1.]",
                                  "FETCH 1 BODY[]<a.b>", "FETCH 1 BODY[1MIME]", "FETCH 1 BODY[MIME]",
                                  "FETCH 1 (FLAGS ALL)", "FETCH 1", "FETCH 1 FLAGS (CHANGEDSINCE x)",
                                  "FETCH 1 FLAGS (FOO 1)", "STORE 0 +FLAGS (\\Seen)",
                                  "STORE 1 +FLAGS (\\Recent)", "STORE 1 +FLAGS (\\Foo)", "STORE 1 FLAGS",
                                  "STORE 1 XFLAGS (\\Seen)", "STORE 1 (UNCHANGEDSINCE x) FLAGS ()",
                                  "COPY 9 INBOX", "COPY 1", "MOVE 0 INBOX", "SEARCH", "SEARCH FOO",
                                  "SEARCH SINCE 31-Foo-2020", "SEARCH LARGER x", "SEARCH OR SEEN",
                                  "SEARCH (SEEN", "SEARCH NOT", "SEARCH HEADER", "SEARCH RETURN (FOO) ALL",
                                  "UID EXPUNGE x", "EXPUNGE 1"]):
            tagged, untagged = r.cmd("b%d" % n, text)
            self.assertTrue(tagged.startswith("b%d BAD" % n), (text, tagged))
            self.assertEqual([u for u in untagged if "FETCH" in u], [], text)
        tagged, untagged = r.cmd("u", "UID FETCH 999 FLAGS")
        self.assertEqual((tagged, untagged), ("u OK Fetch completed.", []))
        tagged, untagged = r.cmd("n", "FETCH 2 (FLAGS)")
        self.assertEqual(tagged, "n OK Fetch completed.")
        self.assertEqual(untagged, ["* 2 FETCH (FLAGS ())"])
        r.close()

    def test_condstore_modseq_changedsince_unchangedsince(self):
        m = self.login()
        self.folder(m, "Cond", [corpus_message("plain")] * 4)
        mods = {}
        for line in self.fetch(m, "1:*", "(MODSEQ)").split(b")")[:-1]:
            mm = re.search(rb"(\d+) \(MODSEQ \((\d+)", line)
            if mm:
                mods[int(mm.group(1))] = int(mm.group(2))
        self.assertEqual(sorted(mods), [1, 2, 3, 4])
        top = max(mods.values())
        typ, d = m.store("2", "+FLAGS", "(\\Flagged)")
        self.assertEqual(typ, "OK")
        # CONDSTORE is on (MODSEQ was used): STORE's FETCH carries MODSEQ
        self.assertRegex(raw(d), rb"^2 \(FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\)\)$")
        got = self.fetch(m, "1:*", "(FLAGS) (CHANGEDSINCE %d)" % top)
        mm = re.fullmatch(rb"2 \(FLAGS \(\\Flagged \\Recent\) MODSEQ \((\d+)\)\)", got)
        self.assertTrue(mm, got)
        new = int(mm.group(1))
        self.assertGreater(new, top)
        # UNCHANGEDSINCE: 2 changed after `top`, so it is refused; 1 and 3 pass
        r = Raw(self.imap, "alice")
        r.cmd("s", "SELECT Cond")
        tagged, untagged = r.cmd("c", "STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % top)
        self.assertEqual(tagged, "c OK [MODIFIED 2] Conditional store failed.")
        self.assertEqual(len([u for u in untagged if "FETCH" in u]), 2, untagged)
        self.assertTrue(all("MODSEQ (" in u for u in untagged if "FETCH" in u), untagged)
        tagged, untagged = r.cmd("c2", "UID STORE 1:4 (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Answered)")
        self.assertEqual(tagged, "c2 OK [MODIFIED 1:4] Conditional store failed.")
        # .SILENT under CONDSTORE: untagged FETCH with UID and MODSEQ only (RFC 7162 3.1.3)
        tagged, untagged = r.cmd("c3", "UID STORE 4 +FLAGS.SILENT (\\Draft)")
        self.assertEqual(tagged, "c3 OK Store completed.")
        self.assertEqual(len(untagged), 1, untagged)
        self.assertRegex(untagged[0], r"^\* 4 FETCH \(UID 4 MODSEQ \(\d+\)\)$")
        tagged, untagged = r.cmd("c4", "SEARCH MODSEQ %d" % (top + 1))
        self.assertRegex(untagged[0], r"^\* SEARCH 1 2 3 4 \(MODSEQ \d+\)$")
        tagged, untagged = r.cmd("c5", 'SEARCH MODSEQ "/flags/\\\\draft" all %d' % (top + 1))
        self.assertRegex(untagged[0], r"^\* SEARCH 1 2 3 4 \(MODSEQ \d+\)$")
        # CONDSTORE is on in this session: FLAGS come with MODSEQ
        tagged, untagged = r.cmd("c6", "FETCH 4 (FLAGS)")
        self.assertRegex(untagged[0], r"^\* 4 FETCH \(FLAGS \(\\Draft\) MODSEQ \(\d+\)\)$")
        self.assertEqual(self.flags(m, "2"), ["\\Flagged"])
        r.close()
        m.logout()

    def test_expunged_elsewhere_during_fetch(self):
        a = Raw(self.imap, "alice")
        m = self.login()
        self.folder(m, "Gone", [corpus_message("plain"), corpus_message("alternative"),
                                corpus_message("nested")])
        a.cmd("s", "SELECT Gone")
        m.store("2", "+FLAGS", "(\\Deleted)")
        m.expunge()
        # a's view still has 3 messages: FETCH must not shift its numbers
        tagged, untagged = a.cmd("f", "FETCH 1:3 (FLAGS)")
        self.assertEqual(tagged, "f OK Fetch completed.")
        self.assertEqual([u.split(" FETCH")[0] for u in untagged if "FETCH" in u], ["* 1", "* 2", "* 3"])
        self.assertFalse(any("EXPUNGE" in u for u in untagged), untagged)
        tagged, untagged = a.cmd("g", "FETCH 2:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(tagged, "g OK [EXPUNGEISSUED] Some messages were already expunged.")
        tagged, untagged = a.cmd("h", "SEARCH ALL")
        self.assertFalse(any("EXPUNGE" in u for u in untagged), untagged)
        tagged, untagged = a.cmd("n", "NOOP")
        self.assertIn("* 2 EXPUNGE", untagged)
        tagged, untagged = a.cmd("f2", "FETCH 1:* (UID)")
        self.assertEqual(untagged, ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)"])
        a.close()
        m.logout()

    # ---- SEARCH ----

    def test_search_key_families(self):
        m = self.login()
        names = corpus_names()     # alternative attachment encoded nested plain
        m.create("Search")
        for n in names:
            m.append("Search", None, '"15-Mar-2022 10:00:00 +0000"', corpus_message(n))
        m.append("Search", "(\\Flagged $Work)", '"01-Jan-2021 00:00:00 +0000"', corpus_message("plain"))
        m.select("Search")          # the first to look: all six are \Recent here
        by = {n: i for i, n in enumerate(names, 1)}
        s = self.search
        self.assertEqual(s(m, "ALL"), [1, 2, 3, 4, 5, 6])
        # flags
        m.store("1", "+FLAGS", "(\\Seen \\Answered)")
        m.store("2", "+FLAGS", "(\\Deleted \\Draft)")
        self.assertEqual(s(m, "SEEN"), [1])
        self.assertEqual(s(m, "UNSEEN"), [2, 3, 4, 5, 6])
        self.assertEqual(s(m, "ANSWERED"), [1])
        self.assertEqual(s(m, "UNANSWERED"), [2, 3, 4, 5, 6])
        self.assertEqual(s(m, "DELETED"), [2])
        self.assertEqual(s(m, "UNDELETED"), [1, 3, 4, 5, 6])
        self.assertEqual(s(m, "DRAFT"), [2])
        self.assertEqual(s(m, "UNDRAFT"), [1, 3, 4, 5, 6])
        self.assertEqual(s(m, "FLAGGED"), [6])
        self.assertEqual(s(m, "UNFLAGGED"), [1, 2, 3, 4, 5])
        self.assertEqual(s(m, "KEYWORD", "$Work"), [6])
        self.assertEqual(s(m, "UNKEYWORD", "$Work"), [1, 2, 3, 4, 5])
        self.assertEqual(s(m, "KEYWORD", "$Nobody"), [])
        self.assertEqual(s(m, "UNKEYWORD", "$Nobody"), [1, 2, 3, 4, 5, 6])
        # this session saw them first: all recent; NEW = RECENT UNSEEN
        self.assertEqual(s(m, "RECENT"), [1, 2, 3, 4, 5, 6])
        self.assertEqual(s(m, "NEW"), [2, 3, 4, 5, 6])
        self.assertEqual(s(m, "OLD"), [])
        # sizes
        sizes = {}
        for line in re.findall(rb"(\d+) \(RFC822\.SIZE (\d+)\)", self.fetch(m, "1:*", "(RFC822.SIZE)")):
            sizes[int(line[0])] = int(line[1])
        mid = sorted(sizes.values())[2]
        self.assertEqual(s(m, "LARGER", str(mid)), sorted(k for k, v in sizes.items() if v > mid))
        self.assertEqual(s(m, "SMALLER", str(mid)), sorted(k for k, v in sizes.items() if v < mid))
        # internal dates (APPEND's) and Date: headers
        self.assertEqual(s(m, "ON", "15-Mar-2022"), [1, 2, 3, 4, 5])
        self.assertEqual(s(m, "BEFORE", "15-Mar-2022"), [6])
        self.assertEqual(s(m, "SINCE", "16-Mar-2022"), [])
        self.assertEqual(s(m, "SENTON", "7-Feb-1994"), [by["plain"], 6])
        self.assertEqual(s(m, "SENTON", "2-Feb-2023"), [by["encoded"]])  # 23:30 -0500: its own day
        self.assertEqual(s(m, "SENTBEFORE", "1-Jan-2000"), [by["plain"], 6])
        self.assertEqual(s(m, "SENTSINCE", "10-Mar-2023"), [by["nested"]])
        # address and subject headers, RFC 2047 decoded, case-insensitive
        self.assertEqual(s(m, "FROM", "ALICE@example"), [by["plain"], 6])
        self.assertEqual(s(m, "TO", "carol"), [by["plain"], 6])
        self.assertEqual(s(m, "CC", '"the reviewer"'), [by["plain"], 6])
        self.assertEqual(s(m, "BCC", "anyone"), [])
        self.assertEqual(s(m, "SUBJECT", "QUARTERLY"), [by["attachment"]])
        self.assertEqual(s(m, "HEADER", "Message-ID", "enc-1"), [by["encoded"]])
        self.assertEqual(s(m, "HEADER", "In-Reply-To", '""'), [by["plain"], 6])
        for key, text, want in (("SUBJECT", "grüße aus köln", [by["encoded"]]),
                                ("FROM", "JÜRGEN", [by["encoded"]]),
                                ("BODY", "café mugs", [by["alternative"]]),
                                ("BODY", "STRASSENFEST", []),
                                ("BODY", "straßenfest", [by["encoded"]]),
                                ("TEXT", "köln", [by["encoded"]])):
            m.literal = text.encode("utf-8")
            self.assertEqual(s(m, key, charset="UTF-8"), want, (key, text))
        # bodies: decoded text parts, nested messages; attachments' base64 is not text
        self.assertEqual(s(m, "BODY", "xylophone"), [by["nested"]])
        self.assertEqual(s(m, "BODY", "zebra"), [by["plain"], 6])
        self.assertEqual(s(m, "BODY", '"Spring offers"'), [by["alternative"]])
        self.assertEqual(s(m, "BODY", "JVBERi0x"), [])
        self.assertEqual(s(m, "BODY", "Quarterly"), [])
        self.assertEqual(s(m, "TEXT", "Quarterly"), [by["attachment"]])
        self.assertEqual(s(m, "TEXT", '"Digest two"'), [by["nested"]])
        # sets, UID, logic
        self.assertEqual(s(m, "2:4"), [2, 3, 4])
        self.assertEqual(s(m, "5:*"), [5, 6])
        self.assertEqual(s(m, "100"), [])
        self.assertEqual(s(m, "UID", "2,4:5"), [2, 4, 5])
        self.assertEqual(s(m, "NOT", "SEEN", "NOT", "FLAGGED"), [2, 3, 4, 5])
        self.assertEqual(s(m, "OR", "SEEN", "FLAGGED"), [1, 6])
        self.assertEqual(s(m, "(OR", "DELETED", "FLAGGED)", "BODY", "zebra"), [6])
        self.assertEqual(s(m, "NOT", "(FROM", "alice", "OR", "DRAFT", "SUBJECT", "spring)"), [1, 2, 3, 4, 5, 6])
        self.assertEqual(s(m, "NOT", "(OR", "FROM", "alice", "OR", "DRAFT", "SUBJECT", "spring)"),
                         [by["encoded"], by["nested"]])
        typ, d = m.uid("SEARCH", "FLAGGED")
        self.assertEqual(d, [b"6"])
        # CHARSET
        typ, d = m._simple_command("SEARCH", "CHARSET", "KOI8-R", "ALL")
        self.assertEqual(typ, "NO")
        self.assertIn(b"[BADCHARSET (UTF-8 US-ASCII)]", d[0])
        self.assertEqual(s(m, "ALL", charset="US-ASCII"), [1, 2, 3, 4, 5, 6])
        m.logout()

    def test_esearch(self):
        r = Raw(self.imap, "alice")
        m = self.login()
        self.folder(m, "ESearch", [corpus_message("plain")] * 6)
        m.store("2,4:5", "+FLAGS", "(\\Flagged)")
        m.logout()
        r.cmd("s", "SELECT ESearch")
        tagged, untagged = r.cmd("e1", "SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED")
        self.assertEqual(untagged, ['* ESEARCH (TAG "e1") MIN 2 MAX 5 ALL 2,4:5 COUNT 3'])
        tagged, untagged = r.cmd("e2", "UID SEARCH RETURN (COUNT) UNFLAGGED")
        self.assertEqual(untagged, ['* ESEARCH (TAG "e2") UID COUNT 3'])
        tagged, untagged = r.cmd("e3", "SEARCH RETURN () ALL")
        self.assertEqual(untagged, ['* ESEARCH (TAG "e3") ALL 1:6'])
        tagged, untagged = r.cmd("e4", "SEARCH RETURN (MIN MAX) SUBJECT nomatch")
        self.assertEqual(untagged, ['* ESEARCH (TAG "e4")'])
        tagged, untagged = r.cmd("e5", "UID SEARCH RETURN (MIN) CHARSET UTF-8 BODY zebra")
        self.assertEqual(untagged, ['* ESEARCH (TAG "e5") UID MIN 1'])
        self.assertEqual(tagged, "e5 OK Search completed.")
        r.close()

    # ---- STORE ----

    def test_store(self):
        r = Raw(self.imap, "alice")
        m = self.login()
        self.folder(m, "Store", [corpus_message("plain")] * 3)
        m.logout()
        r.cmd("s", "SELECT Store")
        tagged, untagged = r.cmd("a", "STORE 1 +FLAGS (\\Seen \\Flagged)")
        self.assertEqual((tagged, untagged), ("a OK Store completed.",
                                              ["* 1 FETCH (FLAGS (\\Flagged \\Seen))"]))
        tagged, untagged = r.cmd("b", "STORE 1 -FLAGS \\Seen")
        self.assertEqual(untagged, ["* 1 FETCH (FLAGS (\\Flagged))"])
        tagged, untagged = r.cmd("c", "STORE 1:2 FLAGS (\\Answered $Label1 todo)")
        # new keywords: the session announces FLAGS / PERMANENTFLAGS again
        self.assertTrue(any(u.startswith("* FLAGS (") and "$Label1 todo" in u for u in untagged), untagged)
        self.assertEqual([u for u in untagged if "FETCH" in u], ["* 1 FETCH (FLAGS (\\Answered $Label1 todo))",
                                    "* 2 FETCH (FLAGS (\\Answered $Label1 todo))"])
        tagged, untagged = r.cmd("d", "STORE 2 FLAGS.SILENT ()")
        self.assertEqual((tagged, untagged), ("d OK Store completed.", []))
        tagged, untagged = r.cmd("e", "UID STORE 3 +FLAGS (\\Deleted)")
        self.assertEqual(untagged, ["* 3 FETCH (UID 3 FLAGS (\\Deleted))"])
        tagged, untagged = r.cmd("f", "STORE 1 -FLAGS ($Unknown)")
        self.assertEqual(untagged, ["* 1 FETCH (FLAGS (\\Answered $Label1 todo))"])
        for bad in ("(\\Recent)", "(\\Foo)", "(\"quoted\")", "((\\Seen))"):
            tagged, untagged = r.cmd("g", "STORE 1 +FLAGS " + bad)
            self.assertTrue(tagged.startswith("g BAD"), (bad, tagged))
        # the flags are on disk: a new session sees them
        tagged, untagged = r.cmd("h", "LOGOUT")
        r.close()
        m = self.login()
        m.select("Store")
        self.assertEqual(self.flags(m, "1"), ["\\Answered", "$Label1", "todo"])
        self.assertEqual(self.flags(m, "3"), ["\\Deleted"])
        m.select("Store", readonly=True)
        typ, d = m.store("1", "+FLAGS", "(\\Seen)")
        self.assertEqual(typ, "NO")
        typ, d = m._simple_command("EXPUNGE")
        self.assertEqual(typ, "NO")
        typ, d = m._simple_command("MOVE", "1", "INBOX")
        self.assertEqual(typ, "NO")
        m.logout()

    # ---- COPY / MOVE / EXPUNGE ----

    def test_copy_move(self):
        r = Raw(self.imap, "alice")
        m = self.login()
        self.folder(m, "CopySrc", [corpus_message(n) for n in ("plain", "alternative", "nested")])
        m.store("2", "+FLAGS", "(\\Flagged $Important)")
        m.create("CopyDst")
        m.logout()
        tagged, untagged = r.cmd("s", "SELECT CopySrc")
        tagged, untagged = r.cmd("s2", "STATUS CopyDst (UIDVALIDITY)")
        dst_validity = re.search(r"UIDVALIDITY (\d+)", untagged[0]).group(1)
        tagged, _ = r.cmd("c1", "COPY 1:2 CopyDst")
        self.assertEqual(tagged, "c1 OK [COPYUID %s 1:2 1:2] Copy completed." % dst_validity)
        tagged, _ = r.cmd("c2", "UID COPY 3,1 CopyDst")
        self.assertEqual(tagged, "c2 OK [COPYUID %s 1,3 3:4] Copy completed." % dst_validity)
        tagged, _ = r.cmd("c3", "COPY 1 NoSuchFolder")
        self.assertTrue(tagged.startswith("c3 NO [TRYCREATE] "), tagged)
        tagged, _ = r.cmd("c4", "UID COPY 99 CopyDst")
        self.assertEqual(tagged, "c4 OK No messages found.")
        # MOVE: untagged COPYUID, then the EXPUNGEs, then the tagged OK
        tagged, untagged = r.cmd("m1", "MOVE 2:3 CopyDst")
        self.assertEqual(tagged, "m1 OK Move completed.")
        self.assertEqual(untagged[0], "* OK [COPYUID %s 2:3 5:6] Moved UIDs." % dst_validity)
        self.assertEqual(untagged[1:], ["* 3 EXPUNGE", "* 2 EXPUNGE"])
        tagged, untagged = r.cmd("m2", "UID MOVE 1 CopyDst")
        self.assertEqual(untagged, ["* OK [COPYUID %s 1 7] Moved UIDs." % dst_validity, "* 1 EXPUNGE"])
        tagged, untagged = r.cmd("x", "SELECT CopyDst")
        self.assertIn("* 7 EXISTS", untagged)
        tagged, untagged = r.cmd("f", "FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        text = "\n".join(untagged)
        for mid in ("plain-1", "alt-1", "nested-1"):
            self.assertIn(mid, text)
        # the flagged message kept its flag and keyword through COPY and MOVE
        self.assertEqual(len(re.findall(r"\\Flagged", text)), 2, text)
        self.assertEqual(len(re.findall(r"\$Important", text)), 2, text)
        tagged, _ = r.cmd("y", "SELECT CopySrc")
        tagged, untagged = r.cmd("z", "SEARCH ALL")
        self.assertEqual(untagged, ["* SEARCH"])
        r.close()

    def test_copy_over_quota_leaves_nothing(self):
        m = self.login("dave")            # quota 3k
        msg = corpus_message("plain")     # ~560 bytes
        n = self.folder(m, "Q", [msg, msg, msg])
        self.assertEqual(n, 3)
        m.create("Q2")
        typ, d = m.copy("1:3", "Q2")      # 6 x 560 > 3k: the third copy fails
        self.assertEqual(typ, "NO")
        self.assertIn(b"[OVERQUOTA]", d[0])
        typ, d = m.status("Q2", "(MESSAGES)")
        self.assertIn(b"MESSAGES 0", d[0])
        typ, d = m.copy("1", "Q2")         # one still fits
        self.assertEqual(typ, "OK")
        m.logout()

    def test_expunge_two_sessions(self):
        a = Raw(self.imap, "alice")
        b = Raw(self.imap, "alice")
        m = self.login()
        self.folder(m, "Exp", [corpus_message("plain")] * 5)
        m.logout()
        a.cmd("s", "SELECT Exp")
        b.cmd("s", "SELECT Exp")
        a.cmd("d", "STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        tagged, untagged = a.cmd("x", "EXPUNGE")
        self.assertEqual(tagged, "x OK Expunge completed.")
        self.assertEqual(untagged, ["* 4 EXPUNGE", "* 2 EXPUNGE"])
        # b learns nothing during FETCH / STORE / SEARCH ...
        for tag, text in (("f", "FETCH 1:5 (UID)"), ("t", "STORE 1 +FLAGS.SILENT (\\Seen)"), ("q", "SEARCH ALL")):
            tagged, untagged = b.cmd(tag, text)
            self.assertTrue(tagged.startswith(tag + " OK"), tagged)
            self.assertFalse(any("EXPUNGE" in u for u in untagged), (text, untagged))
        tagged, untagged = b.cmd("q", "SEARCH ALL")
        self.assertEqual(untagged, ["* SEARCH 1 2 3 4 5"])
        # ... and at its next NOOP sees both
        tagged, untagged = b.cmd("n", "NOOP")
        self.assertEqual([u for u in untagged if "EXPUNGE" in u], ["* 4 EXPUNGE", "* 2 EXPUNGE"])
        tagged, untagged = b.cmd("f2", "FETCH 1:* (UID)")
        self.assertEqual(untagged, ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 5)"])
        # UID EXPUNGE removes only the named \Deleted messages
        b.cmd("d2", "STORE 1:3 +FLAGS.SILENT (\\Deleted)")
        tagged, untagged = b.cmd("u", "UID EXPUNGE 3:4")
        self.assertEqual((tagged, untagged), ("u OK Expunge completed.", ["* 2 EXPUNGE"]))
        tagged, untagged = b.cmd("f3", "UID FETCH 1:* (FLAGS)")
        self.assertEqual(untagged, ["* 1 FETCH (UID 1 FLAGS (\\Deleted \\Seen))",
                                    "* 2 FETCH (UID 5 FLAGS (\\Deleted))"])
        tagged, untagged = a.cmd("n", "NOOP")
        self.assertIn("* 2 EXPUNGE", untagged)
        a.close()
        b.close()

    def test_smtp_delivery_then_fetch_search(self):
        msg = (b"From: Outside <sender@outside.test>\r\nTo: erin@example.test\r\n"
               b"Subject: delivered over SMTP\r\nMessage-ID: <smtp-1@outside.test>\r\n\r\n"
               b"The parrot is resting.\r\n")
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.sendmail("sender@outside.test", ["erin@example.test"], msg)
        m = self.login("erin")

        def arrived():
            typ, d = m.select("INBOX")
            return typ == "OK" and int(d[0]) >= 1
        self.assertTrue(wait_until(arrived, timeout=20), self.inst.log()[-3000:])
        env = self.fetch(m, "1", "(ENVELOPE)").decode()
        self.assertIn('"delivered over SMTP" (("Outside" NIL "sender" "outside.test"))', env)
        self.assertEqual(self.search(m, "BODY", "parrot"), [1])
        self.assertEqual(self.search(m, "HEADER", "Received", '""'), [1])    # added by the MTA
        m.logout()

    # ---- flow control ----

    def imapd_sanitized(self):
        for pid in children_of(self.inst.master_pid()):
            try:
                with open("/proc/%d/maps" % pid) as f:
                    if "libasan" in f.read():
                        return True
            except OSError:
                continue
        return False

    def imapd_peaks(self):
        """Peak resident memory (kB) of each imapd process."""
        peaks = {}
        for pid in children_of(self.inst.master_pid()):
            try:
                if os.path.basename(cmdline(pid)[0]) != "imapd":
                    continue
                peaks[pid] = int(proc_status(pid)["VmHWM"].split()[0]) * 1024
            except (OSError, IndexError, KeyError, ValueError):
                continue
        return peaks

    def test_big_fetch_all_bodies(self):
        count = 2000
        m = self.login("bob")
        m.create("Big")
        m.logout()
        base = self.inst.path("mail", DOMAIN, "bob", ".Big")
        st = os.stat(os.path.join(base, "cur"))
        expect = []
        t0 = int(time.time()) - 10000
        for i in range(count):
            body = b"".join(b"message %d line %d %s\n" % (i, j, b"abcdefghij" * (i % 7 + 1))
                            for j in range(40 + i % 50))
            data = (b"From: bulk@example.test\nTo: bob@example.test\nSubject: bulk %d\n"
                    b"Message-ID: <bulk-%d@example.test>\n\n" % (i, i)) + body
            path = os.path.join(base, "new", "%d.M%dP1.bigtest" % (t0 + i, i))
            with open(path, "wb") as f:
                f.write(data)
            os.chown(path, st.st_uid, st.st_gid)
            expect.append(crlf(data))
        r = Raw(self.imap, "bob")
        tagged, untagged = r.cmd("s", "SELECT Big")
        self.assertIn("* %d EXISTS" % count, untagged)
        peak_before = self.imapd_peaks()
        r.sock.sendall(b"f FETCH 1:* (BODY[])\r\n")
        time.sleep(2)               # let the server fill the socket and suspend
        # meanwhile the process serves others (the big FETCH waits, it does not block)
        q = Raw(self.imap, "bob")
        q.cmd("s", "EXAMINE Big")
        t0 = time.time()
        tagged, untagged = q.cmd("f", "FETCH 2000 (UID RFC822.SIZE)")
        self.assertEqual(tagged, "f OK Fetch completed.")
        self.assertLess(time.time() - t0, 5)
        q.close()
        total = 0
        for i in range(count):
            line = r.line()
            mm = re.fullmatch(r"\* (\d+) FETCH \(BODY\[\] \{(\d+)\}", line)
            self.assertTrue(mm, line[:200])
            self.assertEqual(int(mm.group(1)), i + 1)
            data = r.read_exact(int(mm.group(2)))
            self.assertEqual(data, expect[i], "message %d" % (i + 1))
            rest = r.line()
            self.assertEqual(rest, " FLAGS (\\Seen \\Recent))")
            total += len(data)
            if i % 500 == 0:
                time.sleep(0.5)     # a slow reader, again
        self.assertEqual(r.line(), "f OK Fetch completed.")
        self.assertEqual(total, sum(len(e) for e in expect))
        # flow control: the server never held the whole answer (about 8 MB) in memory
        # (not measurable under ASan, whose quarantine keeps freed memory resident)
        peak_after = self.imapd_peaks()
        growth = max([peak_after[p] - peak_before.get(p, peak_after[p]) for p in peak_after] or [0])
        if not self.imapd_sanitized():
            self.assertLess(growth, total // 2, (peak_before, peak_after))
        tagged, untagged = r.cmd("c", "SEARCH UNSEEN")
        self.assertEqual(untagged, ["* SEARCH"])
        tagged, untagged = r.cmd("n", "NOOP")
        self.assertEqual(tagged, "n OK NOOP completed.")
        r.close()
        # a client that goes away in the middle of a big FETCH harms nobody
        for _ in range(3):
            r = Raw(self.imap, "bob")
            r.cmd("s", "SELECT Big")
            r.sock.sendall(b"f FETCH 1:* (BODY.PEEK[] BODYSTRUCTURE)\r\n")
            r.line()
            r.close()
        r = Raw(self.imap, "bob")
        tagged, untagged = r.cmd("s", "EXAMINE Big")
        self.assertIn("* %d EXISTS" % count, untagged)
        r.close()


if __name__ == "__main__":
    main()
