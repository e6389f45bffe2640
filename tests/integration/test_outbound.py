"""Outbound mail: the smtp/lmtp delivery agent and qmgr's routing, against real servers
written in the test (outbound_helpers.FakeServer) and a dnsmasq for MX lookups.

One instance; each behaviour has its own domain routed by transport_maps (or relayhost) to
its own server: several recipients in one pipelined transaction with the DSN parameters,
per-recipient 4xx (deferred, then delivered after `postctl queue flush`) and 5xx (bounced),
LMTP over TCP and a UNIX socket with per-recipient replies after DATA, STARTTLS at the
levels may, encrypt and verify, a server that greets with our own name (loop, 5.4.6), SIZE
(5.3.4), SMTPUTF8 (5.6.7), a hang (timeout), a dropped connection, an unreachable
destination (deferred, and its other mail deferred without connecting), MX preference with
an unreachable first MX, the A fallback without MX, a domain that does not exist, and
reuse of a connection for the next message.
"""
import os
import re
import smtplib
import unittest

from outbound_helpers import Dnsmasq, FakeServer, free_port, self_signed
from postern_test import Instance, main, wait_until

DOMAIN = "example.test"
SENDER = "alice@" + DOMAIN


class OutboundTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("outbound")
        cert, key = self_signed(i.base)
        cls.cert = cert
        cls.relay = FakeServer()
        cls.main_srv = FakeServer()
        cls.nopipe = FakeServer(extensions=("SIZE 1000000", "ENHANCEDSTATUSCODES"))
        cls.lmtp = FakeServer(lmtp=True)
        os.makedirs(i.path("queue", "private"), exist_ok=True)
        sock = i.path("queue", "private", "test-lmtp")
        cls.lmtp_unix = FakeServer(lmtp=True, path=sock)
        os.chmod(sock, 0o666)
        cls.tls = FakeServer(tls_cert=(cert, key))
        cls.loop = FakeServer(hostname="mx.example.test")
        cls.small = FakeServer(extensions=("PIPELINING", "SIZE 100"))
        cls.noutf8 = FakeServer(extensions=("PIPELINING", "8BITMIME"))
        cls.hang = FakeServer()
        cls.hang.actions["MAIL"] = "hang"
        cls.hang.hang_seconds = 8
        cls.drop = FakeServer()
        cls.drop.actions["DOT"] = "drop"
        cls.mx = FakeServer()
        cls.dead_port = free_port()
        cls.dns = Dnsmasq(["--local=/test/",
                           "--mx-host=mx.test,mx1.mx.test,10", "--mx-host=mx.test,mx2.mx.test,20",
                           "--host-record=mx1.mx.test,127.0.0.3", "--host-record=mx2.mx.test,127.0.0.1",
                           "--host-record=amx.test,127.0.0.1", "--host-record=sink.example.net,127.0.0.1"])
        tmap = i.path("etc", "transport")
        entries = {
            "main.test": "smtp:[127.0.0.1]:%d" % cls.main_srv.port,
            "nopipe.test": "smtp:[127.0.0.1]:%d" % cls.nopipe.port,
            "lmtp.test": "lmtp:inet:127.0.0.1:%d" % cls.lmtp.port,
            "lmtpunix.test": "lmtp:unix:private/test-lmtp",
            "tls.test": "smtp:[127.0.0.1]:%d" % cls.tls.port,
            "verify.test": "smtpverify:[sink.example.net]:%d" % cls.tls.port,
            "verifybad.test": "smtpverifybad:[127.0.0.1]:%d" % cls.tls.port,
            "encrypt.test": "smtpencrypt:[127.0.0.1]:%d" % cls.main_srv.port,
            "loop.test": "smtp:[127.0.0.1]:%d" % cls.loop.port,
            "small.test": "smtp:[127.0.0.1]:%d" % cls.small.port,
            "noutf8.test": "smtp:[127.0.0.1]:%d" % cls.noutf8.port,
            "hang.test": "smtp:[127.0.0.1]:%d" % cls.hang.port,
            "drop.test": "smtp:[127.0.0.1]:%d" % cls.drop.port,
            "dead.test": "smtp:[127.0.0.1]:%d" % cls.dead_port,
            "mx.test": "smtp:mx.test:%d" % cls.mx.port,
            "amx.test": "smtp:amx.test:%d" % cls.mx.port,
            "nx.test": "smtp:nx.test:%d" % cls.mx.port,
            "nohop.test": "nosuchagent:",
        }
        with open(tmap, "w") as f:
            for k, v in entries.items():
                f.write("%s %s\n" % (k, v))
        with open(os.path.join(i.config_dir, "master.cf"), "a") as f:
            f.write("smtpverify unix - - y - 1 smtp -o smtp_tls_security_level=verify "
                    "-o smtp_tls_CAfile=%s\n" % cert)
            f.write("smtpverifybad unix - - y - 1 smtp -o smtp_tls_security_level=verify\n")
            f.write("smtpencrypt unix - - y - 1 smtp -o smtp_tls_security_level=encrypt\n")
        i.set_main_cf(transport_maps="texthash:" + tmap,
                      relayhost="[127.0.0.1]:%d" % cls.relay.port,
                      smtp_dns_servers="127.0.0.1:%d" % cls.dns.port,
                      smtp_mail_timeout="3s", smtp_connection_cache_time_limit="10s",
                      minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", SENDER, "--password-stdin", input="alice-pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            for s in (cls.relay, cls.main_srv, cls.nopipe, cls.lmtp, cls.lmtp_unix, cls.tls, cls.loop,
                      cls.small, cls.noutf8, cls.hang, cls.drop, cls.mx):
                s.close()
            cls.dns.close()

    def send(self, rcpts, body=b"Subject: out\r\n\r\nbody\r\n", mail_options=(), rcpt_options=()):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.example.test")
            s.sendmail(SENDER, rcpts, body, mail_options=list(mail_options), rcpt_options=list(rcpt_options))

    def results(self, rcpt):
        """Every (relay, dsn, status, reason) logged for rcpt, in order."""
        return re.findall(r"to=<%s>, relay=(\S+), delay=[0-9.]+, dsn=([0-9.]+), status=(\w+) \((.*)\)"
                          % re.escape(rcpt), self.inst.log())

    def final(self, rcpt, status, timeout=30):
        """Wait for a log line of rcpt with status; return it."""
        ok = wait_until(lambda: [r for r in self.results(rcpt) if r[2] == status], timeout=timeout)
        self.assertTrue(ok, "no status=%s for %s:\n%s" % (status, rcpt, self.inst.log()[-5000:]))
        return ok[-1]

    def test_relayhost_pipelined_dsn(self):
        rcpts = ["r1@plain.test", "r2@plain.test", "r3@other.test"]
        self.send(rcpts, mail_options=["RET=HDRS", "ENVID=env+2B1"], rcpt_options=["NOTIFY=SUCCESS,FAILURE"])
        for r in rcpts:
            relay, dsn, status, reason = self.final(r, "sent")
            self.assertEqual(relay, "127.0.0.1[127.0.0.1]:%d" % self.relay.port)
            self.assertTrue(reason.startswith("250 2.0.0 Ok"), reason)
        msgs = [m for m in self.relay.messages if any(a == "r1@plain.test" for a, _ in m.rcpts)]
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        # both domains go to the one relayhost: one transaction for all three
        self.assertEqual(sorted(a for a, _ in m.rcpts), ["r1@plain.test", "r2@plain.test", "r3@other.test"])
        self.assertEqual(m.mail_from, SENDER)
        self.assertIn("RET=HDRS", m.mail_params)
        self.assertIn("ENVID=env+2B1", m.mail_params)
        self.assertIn("SIZE=", m.mail_params)
        self.assertIn("NOTIFY=SUCCESS,FAILURE", m.rcpts[0][1])
        self.assertIn(b"Subject: out", m.data)
        self.assertEqual(m.helo, "mx.example.test")
        self.assertIn("r3@other.test", self.relay.rcpts())
        # delivered: gone from the queue (other tests leave deferred mail there)
        self.assertTrue(wait_until(lambda: "r1@plain.test" not in self.inst.postctl("queue", "list"),
                                   timeout=15))

    def test_per_recipient_5xx_and_4xx_then_flush(self):
        srv = self.main_srv
        srv.rcpt_replies["bad@main.test"] = "550 5.1.1 <bad@main.test>: no such user"
        srv.rcpt_replies["later@main.test"] = "450 4.2.0 <later@main.test>: greylisted"
        body = b"Subject: mixed\r\n\r\n.leading dot line\r\nbody\r\n"
        self.send(["good@main.test", "bad@main.test", "later@main.test"], body=body)
        self.assertEqual(self.final("good@main.test", "sent")[1], "2.0.0")
        relay, dsn, status, reason = self.final("bad@main.test", "bounced")
        self.assertEqual(dsn, "5.1.1")
        self.assertIn("said: 550 5.1.1 <bad@main.test>: no such user (in reply to RCPT TO command)", reason)
        relay, dsn, status, reason = self.final("later@main.test", "deferred")
        self.assertEqual(dsn, "4.2.0")
        good = [m for m in srv.messages if ("good@main.test", "") in m.rcpts][0]
        self.assertIn(b"\r\n.leading dot line\r\n", good.data)     # dot-stuffing undone by the server
        # the queue still has the deferred recipient; the server now takes it
        out = self.inst.postctl("queue", "list")
        self.assertIn("later@main.test", out)
        del srv.rcpt_replies["later@main.test"]
        self.inst.postctl("queue", "flush")
        self.final("later@main.test", "sent")
        self.assertEqual([a for a in srv.rcpts() if a == "good@main.test"], ["good@main.test"])

    def test_without_pipelining(self):
        self.nopipe.rcpt_replies["no@nopipe.test"] = "550 5.7.1 not here"
        self.send(["a@nopipe.test", "no@nopipe.test", "b@nopipe.test"])
        self.final("a@nopipe.test", "sent")
        self.final("b@nopipe.test", "sent")
        self.assertEqual(self.final("no@nopipe.test", "bounced")[1], "5.7.1")
        self.assertEqual(len(self.nopipe.messages), 1)

    def test_lmtp_inet_and_unix(self):
        self.lmtp.lmtp_replies["full@lmtp.test"] = "452 4.2.2 <full@lmtp.test> mailbox full"
        self.lmtp.lmtp_replies["gone@lmtp.test"] = "550 5.1.1 <gone@lmtp.test> unknown"
        self.send(["ok@lmtp.test", "full@lmtp.test", "gone@lmtp.test"])
        relay, dsn, status, reason = self.final("ok@lmtp.test", "sent")
        self.assertEqual(relay, "127.0.0.1[127.0.0.1]:%d" % self.lmtp.port)
        self.assertEqual(self.final("full@lmtp.test", "deferred")[1], "4.2.2")
        self.assertEqual(self.final("gone@lmtp.test", "bounced")[1], "5.1.1")
        self.assertEqual(len(self.lmtp.messages), 1)
        self.assertTrue(any(c.startswith("LHLO ") for c in self.lmtp.commands))
        self.send(["u1@lmtpunix.test", "u2@lmtpunix.test"])
        self.final("u1@lmtpunix.test", "sent")
        self.final("u2@lmtpunix.test", "sent")
        self.assertEqual(sorted(self.lmtp_unix.rcpts()), ["u1@lmtpunix.test", "u2@lmtpunix.test"])

    def test_starttls_levels(self):
        self.send(["t@tls.test"])
        self.final("t@tls.test", "sent")
        self.assertTrue(self.tls.messages[-1].tls)
        self.assertRegex(self.inst.log(), r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23] with cipher"
                         % self.tls.port)
        # verify: the CA file holds the server's certificate and its name matches: Trusted
        self.send(["v@verify.test"])
        self.final("v@verify.test", "sent")
        self.assertRegex(self.inst.log(), r"Trusted TLS connection established to sink\.example\.net\[127\.0\.0\.1\]:%d"
                         % self.tls.port)
        # verify without that CA: deferred, not sent
        self.send(["v@verifybad.test"])
        relay, dsn, status, reason = self.final("v@verifybad.test", "deferred")
        self.assertEqual(dsn, "4.7.5")
        self.assertIn("Server certificate not verified", reason)
        # encrypt: a server without STARTTLS gets nothing
        before = len(self.main_srv.messages)
        self.send(["e@encrypt.test"])
        relay, dsn, status, reason = self.final("e@encrypt.test", "deferred")
        self.assertEqual(dsn, "4.7.4")
        self.assertIn("TLS is required, but was not offered", reason)
        self.assertEqual(len(self.main_srv.messages), before)

    def test_loops_back_to_myself(self):
        self.send(["x@loop.test"])
        relay, dsn, status, reason = self.final("x@loop.test", "bounced")
        self.assertEqual(dsn, "5.4.6")
        self.assertIn("mail for 127.0.0.1 loops back to myself", reason)
        self.assertEqual(self.loop.messages, [])

    def test_size_and_smtputf8(self):
        self.send(["big@small.test"], body=b"Subject: big\r\n\r\n" + b"x" * 500 + b"\r\n")
        relay, dsn, status, reason = self.final("big@small.test", "bounced")
        self.assertEqual(dsn, "5.3.4")
        self.assertIn("exceeds size limit 100", reason)
        self.assertEqual(self.small.messages, [])
        self.send(["u@noutf8.test"], body="Subject: caf\u00e9\r\n\r\nbody\r\n".encode(),
                  mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertEqual(self.final("u@noutf8.test", "bounced")[1], "5.6.7")
        self.assertEqual(self.noutf8.messages, [])

    def test_hang_and_drop_defer(self):
        self.send(["h@hang.test"])
        relay, dsn, status, reason = self.final("h@hang.test", "deferred")
        self.assertIn("timed out while sending MAIL FROM", reason)
        self.send(["d@drop.test"])
        relay, dsn, status, reason = self.final("d@drop.test", "deferred")
        self.assertEqual(dsn, "4.4.2")
        self.assertIn("lost connection", reason)

    def test_dead_destination(self):
        self.send(["a@dead.test"])
        relay, dsn, status, reason = self.final("a@dead.test", "deferred")
        self.assertEqual(dsn, "4.4.1")
        self.assertIn("connect to 127.0.0.1[127.0.0.1]:%d" % self.dead_port, reason)
        self.assertIn("Connection refused", reason)

    def test_mx_preference_and_fallback(self):
        self.send(["m@mx.test"])
        relay, dsn, status, reason = self.final("m@mx.test", "sent")
        # mx1 (127.0.0.3, preference 10) refuses; mx2 (preference 20) takes it
        self.assertEqual(relay, "mx2.mx.test[127.0.0.1]:%d" % self.mx.port)
        self.send(["a@amx.test"])
        relay, dsn, status, reason = self.final("a@amx.test", "sent")
        self.assertEqual(relay, "amx.test[127.0.0.1]:%d" % self.mx.port)
        self.send(["n@nx.test"])
        relay, dsn, status, reason = self.final("n@nx.test", "bounced")
        self.assertEqual(dsn, "5.4.4")

    def test_unknown_transport_defers(self):
        self.send(["x@nohop.test"])
        relay, dsn, status, reason = self.final("x@nohop.test", "deferred")
        self.assertEqual(dsn, "4.3.0")
        self.assertIn("nosuchagent", reason)

    def test_connection_reuse(self):
        before = self.relay.connections
        for n in range(3):
            self.send(["reuse%d@reuse.test" % n])
            self.final("reuse%d@reuse.test" % n, "sent")
        conns = {m.conn_no for m in self.relay.messages
                 if any(a.startswith("reuse") for a, _ in m.rcpts)}
        # three messages, fewer connections (the agent kept the idle one for the next)
        self.assertLess(len(conns), 3, "each message had its own connection")
        self.assertLess(self.relay.connections - before, 3)


if __name__ == "__main__":
    main()
