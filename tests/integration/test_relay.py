"""No open relay: a client outside mynetworks, not logged in, cannot get mail
for a foreign domain accepted, whatever address trick it uses.

Each trick is one RCPT from 127.0.0.2 (outside mynetworks = 127.0.0.1/32). It
must be refused with a 5xx, or, when it really names one of our own
addresses, the message must land in our own mailbox and nothing may be
queued for a foreign destination. The figures (tricks tried, refused,
accepted as local) are printed at the end, as the issue asks.
"""
import glob
import json
import socket
import time
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"
OUTSIDE = "127.0.0.2"

# (name, raw RCPT argument as sent after "RCPT TO:"). Raw bytes: smtplib would
# quote or re-encode some of them.
TRICKS = [
    ("plain foreign", b"<user@foreign.test>"),
    ("percent hack", b"<user%foreign.test@example.test>"),
    ("percent hack, real user", b"<alice%foreign.test@example.test>"),
    ("double percent", b"<user%foreign.test%example.test@example.test>"),
    ("percent in foreign domain", b"<user@foreign.test%example.test>"),
    ("source route to foreign", b"<@example.test:user@foreign.test>"),
    ("source route, two hops", b"<@example.test,@mx.example.test:user@foreign.test>"),
    ("source route via literal", b"<@[127.0.0.1]:user@foreign.test>"),
    ("bang path", b"<foreign.test!user@example.test>"),
    ("bang path, real user", b"<foreign.test!alice@example.test>"),
    ("bang path, no domain", b"<foreign.test!user>"),
    ("quoted local part with @", b"<\"user@foreign.test\"@example.test>"),
    ("quoted, real user inside", b"<\"alice@foreign.test\"@example.test>"),
    ("quoted with escaped quote", b"<\"user\\\"@foreign.test\"@example.test>"),
    ("quoted, no domain", b"<\"user@foreign.test\">"),
    ("quoted percent", b"<\"user%foreign.test\"@example.test>"),
    ("trailing dot", b"<user@foreign.test.>"),
    ("two trailing dots", b"<user@foreign.test..>"),
    ("ip literal", b"<user@[192.0.2.1]>"),
    ("ip literal loopback", b"<user@[127.0.0.1]>"),
    ("ip literal loopback, real user", b"<alice@[127.0.0.1]>"),
    ("ip literal outside address", b"<alice@[127.0.0.2]>"),
    ("ipv6 literal loopback", b"<alice@[IPv6:::1]>"),
    ("ipv6 literal", b"<user@[IPv6:2001:db8::1]>"),
    ("literal in local part", b"<user@[192.0.2.1]@example.test>"),
    ("mixed case", b"<USER@FOREIGN.TEST>"),
    ("mixed case, ours in foreign", b"<Alice@Example.Test.Foreign.Test>"),
    ("our domain then foreign", b"<user@example.test@foreign.test>"),
    ("foreign then our domain", b"<user@foreign.test@example.test>"),
    ("route only", b"<@foreign.test>"),
    ("route, empty mailbox", b"<@foreign.test:>"),
    ("route, empty local", b"<@foreign.test:@example.test>"),
    ("empty local part", b"<@example.test>"),
    ("empty path", b"<>"),
    ("only brackets and at", b"<@>"),
    ("idn utf-8 domain", "<user@b\u00fccher.test>".encode()),
    ("utf-8 lookalike of ours", "<alice@exampl\u0435.test>".encode()),       # Cyrillic e
    ("punycode domain", b"<user@xn--bcher-kva.test>"),
    ("latin-1 8-bit domain", b"<user@b\xfccher.test>"),
    ("suffix of ours", b"<user@notexample.test>"),
    ("ours as prefix", b"<user@example.test.foreign.test>"),
    ("ours as subdomain label", b"<alice@foreign.example.test>"),
    ("subdomain of ours", b"<alice@sub.example.test>"),
    ("no brackets", b"user@foreign.test"),
    ("space after colon", b" <user@foreign.test>"),
    ("two addresses", b"<alice@example.test>,<user@foreign.test>"),
    ("two addresses in one", b"<alice@example.test,user@foreign.test>"),
    ("comment", b"<user@foreign.test(example.test)>"),
    ("comment after", b"<user@foreign.test> (alice@example.test)"),
    ("unbalanced bracket", b"<user@foreign.test"),
    ("nested brackets", b"<<user@foreign.test>>"),
    ("backslash at", b"<user\\@foreign.test@example.test>"),
    ("nul in domain", b"<user@foreign.test\x00.example.test>"),
    ("tab in domain", b"<user@foreign.test\t@example.test>"),
    ("cr in domain", b"<user@foreign.test\r@example.test>"),
    ("ESMTP ORCPT parameter", b"<user@foreign.test> ORCPT=rfc822;alice@example.test"),
    ("NOTIFY parameter", b"<user@foreign.test> NOTIFY=NEVER"),
    ("localhost domain", b"<user@localhost>"),
    ("localhost percent", b"<user%foreign.test@localhost>"),
    ("localhost trailing dot bang", b"<foreign.test!user@localhost.>"),
    ("hostname percent", b"<user%foreign.test@mx.example.test>"),
    ("bare local part", b"<user>"),
    ("bare percent", b"<user%foreign.test>"),
    ("bare postmaster percent", b"<postmaster%foreign.test>"),
    ("long padded domain", b"<user@" + b"a" * 60 + b"." + b"b" * 60 + b"." + b"c" * 60
     + b"." + b"d" * 60 + b".foreign.test>"),
    ("very long local part", b"<" + b"u" * 70 + b"@foreign.test>"),
    ("domain with underscore", b"<user@foreign_test.example.test.foreign.test>"),
    ("domain ends with dash", b"<user@foreign-.test>"),
]

# The same tricks, spelled with our real user, that do name our own mailbox:
# accepted, and delivered to alice only.
LOCAL_CONTROLS = [
    ("ours, trailing dot", b"<alice@example.test.>"),
    ("ours, mixed case", b"<ALICE@EXAMPLE.TEST>"),
    ("ours, source route via foreign", b"<@foreign.test:alice@example.test>"),
    ("ours, no brackets", b"alice@example.test"),
]


def maildir_files(inst, user, domain=DOMAIN):
    return sorted(glob.glob(inst.path("mail", domain, user, "new", "*")))


class Client:
    """A raw SMTP client: sends exact bytes, reads whole (multi-line) replies."""

    def __init__(self, port, source=OUTSIDE):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                             source_address=(source, 0))
        self.f = self.sock.makefile("rb")
        self.read()

    def read(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return 0, b"".join(lines) + b"(connection closed)"
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines)

    def cmd(self, data):
        self.sock.sendall(data + b"\r\n")
        return self.read()

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.read()
        except OSError:
            pass
        self.sock.close()


class RelayTest(unittest.TestCase):
    catch_all = False
    figures = {}
    codes = {}                          # class name -> {RCPT reply code: count}

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("relay")
        i = cls.inst
        i.set_main_cf(mynetworks="127.0.0.1/32", queue_run_delay="1s",
                      minimal_backoff_time="1s", maximal_backoff_time="2s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-secret\n")
        if cls.catch_all:
            # every unknown local part of ours reaches alice: a trick naming our domain is
            # then accepted, and must still go to alice and nowhere else
            i.postctl("alias", "add", "@" + DOMAIN, "alice@" + DOMAIN)
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def queued_recipients(self):
        listing = json.loads(self.inst.postctl("queue", "list", "--json"))
        return [r["address"] for m in listing for r in m.get("recipients", [])]

    def assert_nothing_foreign_queued(self, what):
        foreign = [a for a in self.queued_recipients()
                   if a.rsplit("@", 1)[-1].rstrip(".").lower() != DOMAIN]
        self.assertEqual(foreign, [], "%s: foreign recipients queued; log:\n%s"
                         % (what, self.inst.log()[-3000:]))

    def try_rcpt(self, rcpt, sender=b"<sender@outside.test>", helo=b"EHLO client.test",
                 before=()):
        """One transaction from outside; returns (code, reply) of RCPT; on 250 the
        message is sent, so that where it goes can be checked."""
        c = Client(self.inst.smtp_port)
        try:
            self.assertEqual(c.cmd(helo)[0], 250)
            for line in before:
                c.cmd(line)
            self.assertEqual(c.cmd(b"MAIL FROM:" + sender)[0], 250)
            code, text = c.cmd(b"RCPT TO:" + rcpt)
            if code == 250:
                if c.cmd(b"DATA")[0] == 354:
                    c.cmd(b"Subject: relay trick\r\n\r\n" + rcpt.replace(b"\r", b"?") + b"\r\n.")
            return code, text
        finally:
            c.close()

    def judge(self, name, rcpt, local_ok, **kw):
        """5xx, or (only for a real local address) delivered to alice alone."""
        before = len(maildir_files(self.inst, "alice"))
        code, text = self.try_rcpt(rcpt, **kw)
        codes = RelayTest.codes.setdefault(type(self).__name__, {})
        codes[code] = codes.get(code, 0) + 1
        with self.subTest(trick=name, rcpt=rcpt):
            if code == 250:
                self.assertTrue(local_ok, "%s: %r accepted from outside: %r" % (name, rcpt, text))
                ok = wait_until(lambda: len(maildir_files(self.inst, "alice")) > before, timeout=20)
                self.assertTrue(ok, "%s: accepted but not delivered to alice; log:\n%s"
                                % (name, self.inst.log()[-3000:]))
                self.assert_nothing_foreign_queued(name)
                return "local"
            self.assertTrue(500 <= code < 600, "%s: %r: expected 5xx, got %r" % (name, rcpt, text))
            return "refused"

    def count(self, result):
        f = RelayTest.figures.setdefault(type(self).__name__, {"tried": 0, "refused": 0,
                                                                "local": 0, "failed": 0})
        f["tried"] += 1
        f[result if result else "failed"] += 1

    def run_tricks(self, tricks, local_ok, **kw):
        for name, rcpt in tricks:
            result = None
            try:
                result = self.judge(name, rcpt, local_ok or self.catch_all and b"example.test>"
                                    in rcpt.lower() and b"@example.test" in rcpt.lower(), **kw)
            finally:
                self.count(result)

    def test_address_tricks(self):
        self.run_tricks(TRICKS, False)
        self.assert_nothing_foreign_queued("after all tricks")

    def test_address_tricks_with_our_sender(self):
        # a sender in our own domain grants nothing
        self.run_tricks(TRICKS[:12], False, sender=b"<alice@example.test>")

    def test_address_tricks_with_local_helo(self):
        self.run_tricks(TRICKS[:12], False, helo=b"EHLO [127.0.0.1]")
        self.run_tricks(TRICKS[:4], False, helo=b"HELO localhost")

    def test_spoofing_commands_grant_nothing(self):
        for name, before in (("XCLIENT", [b"XCLIENT ADDR=127.0.0.1 NAME=localhost"]),
                             ("XFORWARD", [b"XFORWARD ADDR=127.0.0.1"]),
                             ("failed AUTH", [b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw=="]),
                             ("RSET first", [b"RSET"])):
            result = None
            try:
                result = self.judge(name, b"<user@foreign.test>", False, before=before)
            finally:
                self.count(result)

    def test_local_controls_delivered_to_alice_only(self):
        self.run_tricks(LOCAL_CONTROLS, True)
        self.assert_nothing_foreign_queued("after local controls")

    def test_zz_nothing_foreign_in_queue_or_mail(self):
        time.sleep(1)
        self.assert_nothing_foreign_queued("at the end")
        # and nothing reached a mailbox other than alice's
        boxes = glob.glob(self.inst.path("mail", "*", "*"))
        self.assertEqual([b for b in boxes if not b.endswith("/" + DOMAIN + "/alice")], [], boxes)
        self.assertNotIn("relay=smtp", self.inst.log())


class CatchAllRelayTest(RelayTest):
    """With a catch-all alias for our domain, tricks that name our domain are
    accepted: they must reach alice and nothing else."""
    catch_all = True


if __name__ == "__main__":
    try:
        main()
    finally:
        for cls, f in sorted(RelayTest.figures.items()):
            print("relay figures %s: %d tricks tried, %d refused (5xx), %d accepted as local "
                  "(delivered to our own mailbox), %d failed"
                  % (cls, f["tried"], f["refused"], f["local"], f["failed"]))
            print("relay figures %s: RCPT replies by code: %s" % (cls, ", ".join(
                "%d: %d" % (code, n) for code, n in sorted(RelayTest.codes.get(cls, {}).items()))))
        total = {k: sum(f[k] for f in RelayTest.figures.values())
                 for k in ("tried", "refused", "local", "failed")}
        print("relay figures total: %d tricks tried, %d refused, %d accepted as local, %d failed"
              % (total["tried"], total["refused"], total["local"], total["failed"]))
