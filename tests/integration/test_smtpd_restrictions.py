"""smtpd restrictions, evaluated as Postfix does, driven with real clients.

One instance with several extra smtpd services in master.cf, each with its own
restriction lists (-o overrides), so that every list and restriction is tried
without restarts: client, helo, sender, recipient and data restrictions,
access tables with each kind of result, DNS checks against a tiny DNS server
on 127.0.0.1 (unknown domain 450/550, temporary failure 450, null MX),
policy services over UNIX and TCP sockets (request attributes, greylisting
cycle, connection reuse, service down and silent -> default action), the
error tarpit, connection count and rate limits, smtpd_delay_reject = no,
smtpd_recipient_limit, disable_vrfy_command, smtpd_banner and smtpd_timeout.
Clients connect from 127.0.0.2 and up (outside mynetworks = 127.0.0.1/32).
"""
import smtplib
import socket
import time
import unittest

from postern_test import Instance, main, wait_until
from smtpd_helpers import Client, DNSServer, PolicyServer, add_services, write_table

DOMAIN = "example.test"

P_CLIENT, P_NODELAY, P_HELO, P_SENDER, P_SENDER550, P_RCPT = 2601, 2602, 2603, 2604, 2605, 2606
P_DATA, P_POLICY, P_POLICY_INET, P_POLICY_DOWN, P_POLICY_SLOW = 2607, 2608, 2609, 2610, 2611
P_ERRORS, P_CONN, P_RATE, P_LIMITS, P_TIMEOUT = 2612, 2613, 2614, 2615, 2616


def policy_decide(attrs):
    rcpt = attrs.get("recipient", "")
    local = rcpt.split("@")[0]
    if local == "greylist":
        key = (attrs.get("client_address"), attrs.get("sender"), rcpt)
        seen = policy_decide.seen
        if key not in seen:
            seen[key] = time.time()
            return "450 4.2.0 Greylisted, see http://greylist.example.test/"
        if time.time() - seen[key] < 1.0:
            return "DEFER_IF_PERMIT 4.2.0 Greylisted, try again later"
        return "PREPEND X-Greylist: delayed"
    if local == "rejectme":
        return "REJECT policy says no"
    if local == "okay":
        return "OK"
    if local == "code":
        return "554 5.7.9 custom policy text"
    if local == "restrict":
        return "permit_mynetworks, reject"
    return "DUNNO"


policy_decide.seen = {}


class RestrictionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = DNSServer()
        cls.inst = i = Instance("restrict")
        cls.policy = PolicyServer(policy_decide, unix_path=i.path("queue", "private", "policy"))
        cls.policy_inet = PolicyServer(policy_decide)
        cls.policy_silent = PolicyServer(policy_decide, silent=True)
        # a port where nothing listens: the policy service is down
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        cls.dead_port = s.getsockname()[1]
        s.close()
        i.set_main_cf(mynetworks="127.0.0.1/32", dns_resolver_address="127.0.0.1:%d" % cls.dns.port,
                      smtpd_banner="$myhostname ESMTP restriction test")
        i.postctl("domain", "add", DOMAIN)
        for user in ("alice", "greylist", "rejectme", "okay", "code", "restrict", "plain"):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input="pw\n")
        client_access = write_table(i, "client_access", [
            "127.0.0.3 REJECT go away",
            "127.0.0.4 DEFER try later",
            "127.0.0.5 550 5.7.2 custom client text",
            "127.0.0.6 reject",
            "127.0.0.7 permit_mynetworks, reject",
            "127.0.0.8 HOLD",
            "127.0.0.9 OK",
            "127.0.1 REJECT whole network",
        ])
        helo_access = write_table(i, "helo_access", ["bad.example.test REJECT bad helo"])
        sender_access = write_table(i, "sender_access", [
            "spammer@ REJECT",
            "blocked.test REJECT blocked domain",
            "friend@nx.test OK",
            "later@exists.test DEFER_IF_PERMIT come back later",
        ])
        rcpt_access = write_table(i, "rcpt_access", [
            "busy@example.test 450 4.2.1 mailbox busy",
            "vip@example.test OK",
        ])
        add_services(i, {
            P_CLIENT: ["smtpd_client_restrictions=check_client_access," + client_access],
            P_NODELAY: ["smtpd_delay_reject=no",
                        "smtpd_client_restrictions=check_client_access," + client_access],
            P_HELO: ["smtpd_helo_required=yes",
                     "smtpd_helo_restrictions=reject_invalid_helo_hostname,"
                     "reject_non_fqdn_helo_hostname,check_helo_access," + helo_access
                     + ",reject_unknown_helo_hostname"],
            P_SENDER: ["smtpd_sender_restrictions=reject_non_fqdn_sender,check_sender_access,"
                       + sender_access + ",reject_unknown_sender_domain"],
            P_SENDER550: ["unknown_address_reject_code=550",
                          "smtpd_sender_restrictions=reject_unknown_sender_domain"],
            P_RCPT: ["smtpd_recipient_restrictions=reject_non_fqdn_recipient,"
                     "check_recipient_access," + rcpt_access + ",reject_unknown_recipient_domain"],
            P_DATA: ["smtpd_client_restrictions=reject_unauth_pipelining",
                     "smtpd_data_restrictions=reject_unauth_pipelining"],
            P_POLICY: ["smtpd_recipient_restrictions=check_policy_service,unix:private/policy"],
            P_POLICY_INET: ["smtpd_recipient_restrictions=check_policy_service,"
                            + cls.policy_inet.address],
            P_POLICY_DOWN: ["smtpd_recipient_restrictions=check_policy_service,"
                            "inet:127.0.0.1:%d" % cls.dead_port],
            P_POLICY_SLOW: ["smtpd_policy_service_timeout=1",
                            "smtpd_recipient_restrictions=check_policy_service,"
                            + cls.policy_silent.address],
            P_ERRORS: ["smtpd_soft_error_limit=2", "smtpd_error_sleep_time=1",
                       "smtpd_hard_error_limit=5"],
            P_CONN: ["smtpd_client_connection_count_limit=2"],
            P_RATE: ["smtpd_client_connection_rate_limit=3"],
            P_LIMITS: ["smtpd_recipient_limit=2"],
            P_TIMEOUT: ["smtpd_timeout=2"],
        })
        i.start()
        for p in (P_CLIENT, P_TIMEOUT):
            assert wait_until(lambda: i.port_open(i.port_base + p)), i.log()[-3000:]

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            for srv in (cls.policy, cls.policy_inet, cls.policy_silent, cls.dns):
                srv.close()

    def port(self, offset):
        return self.inst.port_base + offset

    def rcpt(self, offset, rcpt="alice@" + DOMAIN, sender="someone@exists.test",
             helo="client.exists.test", source="127.0.0.2"):
        """(MAIL reply code, RCPT (code, text)) of one transaction."""
        c = Client(self.port(offset), source=source)
        try:
            self.assertEqual(c.cmd("EHLO " + helo)[0], 250)
            mail = c.cmd("MAIL FROM:<%s>" % sender)
            if mail[0] != 250:
                return mail[0], mail
            return mail[0], c.cmd("RCPT TO:<%s>" % rcpt)
        finally:
            c.close()

    def assertRcpt(self, result, code, *texts):
        mail, (rcode, text) = result
        self.assertEqual(mail, 250)
        self.assertEqual(rcode, code, text)
        for t in texts:
            self.assertIn(t, text)

    # -- client restrictions and access tables --------------------------------

    def test_client_access_results(self):
        self.assertRcpt(self.rcpt(P_CLIENT), 250)
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.3"), 554,
                        "554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: go away")
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.4"), 450,
                        "450 4.7.1 <unknown[127.0.0.4]>: Client host rejected: try later")
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.5"), 550,
                        "550 5.7.2 <unknown[127.0.0.5]>: Client host rejected: custom client text")
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.6"), 554, "Access denied")
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.7"), 554, "Client host rejected")
        # an action we do not carry out is logged and ignored
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.8"), 250)
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.0.9"), 250)
        # network prefix lookup: 127.0.1
        self.assertRcpt(self.rcpt(P_CLIENT, source="127.0.1.1"), 554, "whole network")
        # OK from the client list does not open the relay
        self.assertRcpt(self.rcpt(P_CLIENT, rcpt="x@exists.test", source="127.0.0.9"), 554,
                        "Relay access denied")
        self.assertIn("NOQUEUE: reject: RCPT from unknown[127.0.0.3]", self.inst.log())

    def test_delay_reject_no(self):
        c = Client(self.port(P_NODELAY), source="127.0.0.3")
        try:
            self.assertEqual(c.greeting[0], 554, c.greeting)
            self.assertIn("Client host rejected: go away", c.greeting[1])
            code, text = c.cmd("EHLO client.exists.test")
            self.assertEqual(code, 503)
            self.assertIn("503 5.7.0 Error: access denied for unknown[127.0.0.3]", text)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        finally:
            c.sock.close()
        c = Client(self.port(P_NODELAY))
        self.assertEqual(c.greeting[0], 220)
        c.close()

    # -- HELO -------------------------------------------------------------------

    def test_helo_restrictions(self):
        c = Client(self.port(P_HELO))
        self.assertEqual(c.cmd("MAIL FROM:<a@exists.test>")[0], 503)   # smtpd_helo_required
        c.close()
        cases = [
            ("bad_name!", 501, "501 5.5.2 <bad_name!>: Helo command rejected: Invalid name"),
            ("[999.1.1.1]", 501, "invalid ip address"),
            ("localhost", 504, "504 5.5.2 <localhost>: Helo command rejected: need "
                               "fully-qualified hostname"),
            ("host.bad.example.test", 554, "554 5.7.1 <host.bad.example.test>: Helo command "
                                           "rejected: bad helo"),
            ("host.nx.test", 450, "450 4.7.1 <host.nx.test>: Helo command rejected: Host not found"),
            ("[127.0.0.2]", 250, ""),
            ("mail.exists.test", 250, ""),
        ]
        for helo, code, text in cases:
            with self.subTest(helo=helo):
                self.assertRcpt(self.rcpt(P_HELO, helo=helo), code, text)

    # -- sender, DNS ----------------------------------------------------------

    def test_sender_restrictions(self):
        cases = [
            ("a@localhost", 504, "504 5.5.2 <a@localhost>: Sender address rejected: need "
                                 "fully-qualified address"),
            ("spammer@anything.test", 554, "554 5.7.1 <spammer@anything.test>: Sender address "
                                           "rejected: Access denied"),
            ("a@sub.blocked.test", 554, "Sender address rejected: blocked domain"),
            ("a@nx.test", 450, "450 4.1.8 <a@nx.test>: Sender address rejected: Domain not found"),
            ("friend@nx.test", 250, ""),            # OK ends the sender list
            ("a@fail.test", 450, "450 4.1.8 <a@fail.test>: Sender address rejected: Domain not found"),
            ("a@nullmx.test", 550, "550 5.7.27 <a@nullmx.test>: Sender address rejected: Domain "
                                   "nullmx.test does not accept mail"),
            ("a@a-only.test", 250, ""),
            ("a@exists.test", 250, ""),
            ("later@exists.test", 450, "come back later"),
        ]
        for sender, code, text in cases:
            with self.subTest(sender=sender):
                self.assertRcpt(self.rcpt(P_SENDER, sender=sender), code, text)

    def test_unknown_domain_codes(self):
        # unknown_address_reject_code = 550: unknown is permanent, a DNS failure still is not
        self.assertRcpt(self.rcpt(P_SENDER550, sender="a@nx.test"), 550,
                        "550 5.1.8 <a@nx.test>: Sender address rejected: Domain not found")
        self.assertRcpt(self.rcpt(P_SENDER550, sender="a@fail.test"), 450, "4.1.8")
        # a deferral (temporary DNS failure) loses to a later rejection
        self.assertRcpt(self.rcpt(P_SENDER550, sender="a@fail.test", rcpt="x@foreign.test"),
                        554, "Relay access denied")
        # the null sender has no domain to look up
        self.assertRcpt(self.rcpt(P_SENDER550, sender=""), 250)

    def test_recipient_restrictions(self):
        # from mynetworks (relay allowed), so that foreign domains reach the DNS check
        cases = [
            ("x@nx.test", 450, "450 4.1.2 <x@nx.test>: Recipient address rejected: Domain not found"),
            ("x@fail.test", 450, "450 4.1.2 <x@fail.test>: Recipient address rejected: "
                                 "Domain not found"),
            ("x@nullmx.test", 556, "556 5.1.10 <x@nullmx.test>: Recipient address rejected: "
                                   "Domain nullmx.test does not accept mail"),
            ("x@exists.test", 250, ""),
            ("busy@example.test", 450, "450 4.2.1 <busy@example.test>: Recipient address "
                                       "rejected: mailbox busy"),
            ("bob@example.test", 550, "550 5.1.1 <bob@example.test>: Recipient address rejected: "
                                      "User unknown in virtual mailbox table"),
            # OK ends the recipient list, but unknown users are still refused
            ("vip@example.test", 550, "User unknown"),
            ("alice@" + DOMAIN, 250, ""),
        ]
        for rcpt, code, text in cases:
            with self.subTest(rcpt=rcpt):
                self.assertRcpt(self.rcpt(P_RCPT, rcpt=rcpt, source="127.0.0.1"), code, text)
        c = Client(self.port(P_RCPT), source="127.0.0.1")
        c.cmd("EHLO client.exists.test")
        c.cmd("MAIL FROM:<a@exists.test>")
        code, text = c.cmd("RCPT TO:<alice>")
        self.assertEqual(code, 504, text)
        self.assertIn("<alice>: Recipient address rejected: need fully-qualified address", text)
        c.close()

    # -- pipelining ---------------------------------------------------------------

    def test_unauth_pipelining(self):
        # a client that talks first: everything at once, before the greeting
        c = Client(self.port(P_DATA), greet=False)
        c.send(b"EHLO client.exists.test\r\nMAIL FROM:<a@exists.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nDATA\r\nSubject: spam\r\n\r\nbuy\r\n.\r\nQUIT\r\n")
        replies = [c.read() for _ in range(5)]
        c.sock.close()
        self.assertEqual(replies[0][0], 220)
        self.assertEqual(replies[3][0], 250, replies)        # RCPT: ESMTP client may pipeline
        self.assertEqual(replies[4][0], 503, replies)        # DATA: must wait for 354
        self.assertIn("503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command "
                      "pipelining", replies[4][1])
        # HELO (no ESMTP) with pipelined commands: refused at RCPT
        c = Client(self.port(P_DATA))
        c.send(b"HELO client.exists.test\r\nMAIL FROM:<a@exists.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nNOOP\r\n")
        replies = [c.read() for _ in range(4)]
        c.close()
        self.assertEqual(replies[2][0], 503, replies)
        self.assertIn("Client host rejected: Improper use of SMTP command pipelining",
                      replies[2][1])
        # a well-behaved client gets its mail through
        with smtplib.SMTP("127.0.0.1", self.port(P_DATA), source_address=("127.0.0.2", 0)) as s:
            s.ehlo("client.exists.test")
            s.sendmail("a@exists.test", ["alice@" + DOMAIN], "Subject: ok\r\n\r\nhi\r\n")

    # -- policy service -----------------------------------------------------------

    def test_policy_service(self):
        before = len(self.policy.requests)
        self.assertRcpt(self.rcpt(P_POLICY, rcpt="plain@" + DOMAIN), 250)
        self.assertRcpt(self.rcpt(P_POLICY, rcpt="rejectme@" + DOMAIN), 554,
                        "554 5.7.1 <rejectme@example.test>: Recipient address rejected: "
                        "policy says no")
        self.assertRcpt(self.rcpt(P_POLICY, rcpt="code@" + DOMAIN), 554,
                        "554 5.7.9 <code@example.test>: Recipient address rejected: "
                        "custom policy text")
        self.assertRcpt(self.rcpt(P_POLICY, rcpt="restrict@" + DOMAIN), 554, "Access denied")
        self.assertRcpt(self.rcpt(P_POLICY, rcpt="okay@" + DOMAIN), 250)
        self.assertRcpt(self.rcpt(P_POLICY, rcpt="bob@" + DOMAIN), 550, "User unknown")
        req = self.policy.requests[before]
        self.assertEqual(self.policy.errors, [])
        expect = {"request": "smtpd_access_policy", "protocol_state": "RCPT",
                  "protocol_name": "ESMTP", "client_address": "127.0.0.2",
                  "client_name": "unknown", "reverse_client_name": "unknown",
                  "helo_name": "client.exists.test", "sender": "someone@exists.test",
                  "recipient": "plain@example.test", "recipient_count": "0",
                  "sasl_username": "", "encryption_protocol": "", "server_address": "127.0.0.1"}
        for k, v in expect.items():
            self.assertEqual(req.get(k), v, "%s in %r" % (k, req))
        for k in ("instance", "client_port"):
            self.assertTrue(req.get(k), "%s missing in %r" % (k, req))
        # every request of this process went over one reused connection
        self.assertEqual(self.policy.connections, 1)

    def test_greylist_cycle(self):
        with smtplib.SMTP("127.0.0.1", self.port(P_POLICY_INET),
                          source_address=("127.0.0.2", 0)) as s:
            s.ehlo("client.exists.test")
            s.mail("a@exists.test")
            code, text = s.rcpt("greylist@" + DOMAIN)
            self.assertEqual(code, 450, text)
            self.assertIn(b"450 4.2.0 <greylist@example.test>: Recipient address rejected: "
                          b"Greylisted", b"%d " % code + text)
            # too early: DEFER_IF_PERMIT defers, as nothing else rejects
            code, text = s.rcpt("greylist@" + DOMAIN)
            self.assertEqual(code, 450, text)
            time.sleep(1.2)
            # retry after the delay: accepted (the PREPEND is logged and ignored)
            code, text = s.rcpt("greylist@" + DOMAIN)
            self.assertEqual(code, 250, text)
            s.data("Subject: greylisted\r\n\r\nhello\r\n")

    def test_policy_down_and_silent(self):
        self.assertRcpt(self.rcpt(P_POLICY_DOWN), 451,
                        "451 4.3.5 <alice@example.test>: Recipient address rejected: "
                        "Server configuration problem")
        t = time.time()
        self.assertRcpt(self.rcpt(P_POLICY_SLOW), 451, "Server configuration problem")
        self.assertLess(time.time() - t, 10)
        self.assertIn("problem talking to server", self.inst.log())

    # -- errors, limits -----------------------------------------------------------

    def test_error_tarpit_and_hard_limit(self):
        c = Client(self.port(P_ERRORS))
        timings = []
        for _ in range(5):
            t = time.time()
            code, text = c.cmd("BOGUS")
            timings.append(time.time() - t)
        self.assertLess(timings[0], 0.5)
        # the second error reaches the soft limit: its reply waits, and so do the next
        self.assertGreater(timings[1], 0.8, timings)
        self.assertGreater(timings[3], 0.8, timings)
        # the event loop is not blocked: another client is served at once meanwhile
        code, text = c.read() if code == 502 else (code, text)
        self.assertEqual(code, 421, text)
        self.assertIn("421 4.7.0", text)
        self.assertIn("too many errors", text)
        c.sock.close()
        self.assertIn("too many errors after UNKNOWN", self.inst.log())

    def test_tarpit_does_not_block_others(self):
        slow = Client(self.port(P_ERRORS))
        slow.cmd("BOGUS")
        slow.send(b"BOGUS\r\n")                 # this reply is held back
        time.sleep(0.1)
        t = time.time()
        fast = Client(self.port(P_ERRORS), source="127.0.0.20")
        self.assertEqual(fast.cmd("NOOP")[0], 250)
        self.assertLess(time.time() - t, 0.5)
        fast.close()
        self.assertEqual(slow.read()[0], 502)
        slow.close()

    def test_connection_count_limit(self):
        a = Client(self.port(P_CONN), source="127.0.0.30")
        b = Client(self.port(P_CONN), source="127.0.0.30")
        c = Client(self.port(P_CONN), source="127.0.0.30")
        self.assertEqual(a.greeting[0], 220)
        self.assertEqual(b.greeting[0], 220)
        self.assertEqual(c.greeting[0], 421, c.greeting)
        self.assertIn("421 4.7.0 mx.example.test Error: too many connections from 127.0.0.30",
                      c.greeting[1])
        # another client is not affected, and a closed connection frees a slot
        d = Client(self.port(P_CONN), source="127.0.0.31")
        self.assertEqual(d.greeting[0], 220)
        a.close()
        time.sleep(0.2)
        e = Client(self.port(P_CONN), source="127.0.0.30")
        self.assertEqual(e.greeting[0], 220)
        for x in (b, d, e):
            x.close()
        c.sock.close()
        self.assertIn("Connection concurrency limit exceeded: 3 from unknown[127.0.0.30]",
                      self.inst.log())

    def test_connection_rate_limit(self):
        codes = []
        for _ in range(4):
            c = Client(self.port(P_RATE), source="127.0.0.40")
            codes.append(c.greeting[0])
            c.close()
        self.assertEqual(codes, [220, 220, 220, 421])
        self.assertIn("Connection rate limit exceeded", self.inst.log())

    def test_recipient_limit_vrfy_banner(self):
        c = Client(self.port(P_LIMITS))
        self.assertEqual(c.greeting[1], "220 mx.example.test ESMTP restriction test")
        c.cmd("EHLO client.exists.test")
        self.assertEqual(c.cmd("VRFY alice@example.test")[1],
                         "502 5.5.1 VRFY command is disabled")
        c.cmd("MAIL FROM:<a@exists.test>")
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<plain@example.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<okay@example.test>")[1],
                         "452 4.5.3 Error: too many recipients")
        c.close()

    def test_timeout(self):
        c = Client(self.port(P_TIMEOUT))
        t = time.time()
        code, text = c.read()
        self.assertEqual(code, 421, text)
        self.assertIn("421 4.4.2 mx.example.test Error: timeout exceeded", text)
        self.assertLess(time.time() - t, 5)
        c.sock.close()


if __name__ == "__main__":
    main()
