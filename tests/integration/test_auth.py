"""Authentication: authd (Dovecot protocol) behind smtpd's AUTH on submission ports,
checked with real clients: smtplib, swaks, openssl s_client, doveadm, and a real Postfix."""
import base64
import os
import shutil
import smtplib
import socket
import stat
import ssl
import subprocess
import time
import unittest

from postern_test import Instance, is_root, main, proc_status, wait_until

DOMAIN = "example.test"


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE             # the instance's certificate is self-signed
    return ctx


class AuthConnection:
    """A client of authd's socket, as smtpd or imapd is: handshake, then multiplexed AUTH requests."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(30)
        self.sock.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        self.buf = b""
        while b"DONE\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        self.buf = self.buf[self.buf.index(b"DONE\n") + 5:]

    def auth_plain(self, rid, user, password, **fields):
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        extra = b"".join(b"\t%s=%s" % (k.encode(), v.encode()) for k, v in fields.items())
        self.sock.sendall(b"AUTH\t%d\tPLAIN%s\tresp=%s\n" % (rid, extra, resp))

    def reply(self):
        while b"\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def close(self):
        self.sock.close()


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("auth")
        i = cls.inst
        cls.submission = i.port_base + 587
        cls.submissions = i.port_base + 465
        i.set_main_cf(mynetworks="127.0.0.1/32", smtpd_sasl_authenticated_header="yes")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        i.postctl("user", "add", "bob@" + DOMAIN, "--password-stdin", "--disabled", input="bob-pw\n")
        i.postctl("user", "add", "dave@" + DOMAIN, "--quota", "10M", "--password-stdin", input="dave-pw\n")
        i.start()
        assert wait_until(lambda: i.port_open(cls.submissions) or True)
        assert wait_until(lambda: os.path.exists(i.path("queue", "private", "auth")), timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def swaks(self, *args):
        return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.submission),
                               "--from", "alice@" + DOMAIN, "--h-Subject", "via swaks",
                               "--timeout", "30"] + list(args), capture_output=True, text=True)

    def test_submission_requires_tls_before_auth(self):
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as s:
            code, msg = s.ehlo("client.test")
            self.assertIn(b"STARTTLS", msg)
            self.assertNotIn(b"AUTH", msg)                     # smtpd_tls_auth_only
            code, msg = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==")
            self.assertGreaterEqual(code, 500)
            code, msg = s.docmd("MAIL FROM:<alice@example.test>")
            self.assertEqual(code, 530)
            self.assertIn(b"5.7.0", msg)
            s.starttls(context=tls_context())
            code, msg = s.ehlo("client.test")
            self.assertIn(b"AUTH", msg)
            self.assertIn(b"PLAIN", msg)
            self.assertIn(b"LOGIN", msg)

    def test_swaks_auth_plain_and_login_over_starttls(self):
        for mech in ("PLAIN", "LOGIN"):
            r = self.swaks("--to", "someone@foreign.test", "--tls", "--auth", mech,
                           "--auth-user", "alice@" + DOMAIN, "--auth-password", "alice-pw")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("235 2.7.0", r.stdout)
            self.assertIn("queued as", r.stdout)
        self.assertIn("sasl_method=LOGIN, sasl_username=alice@example.test", self.inst.log())

    def test_wrong_password_and_disabled_user_refused(self):
        r = self.swaks("--to", "alice@" + DOMAIN, "--tls", "--auth", "PLAIN",
                       "--auth-user", "alice@" + DOMAIN, "--auth-password", "wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("535 5.7.8", r.stdout)
        r = self.swaks("--to", "alice@" + DOMAIN, "--tls", "--auth", "PLAIN",
                       "--auth-user", "bob@" + DOMAIN, "--auth-password", "bob-pw")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("535 5.7.8", r.stdout)

    def test_relay_needs_auth_on_submission(self):
        with smtplib.SMTP("127.0.0.1", self.submission, timeout=30) as s:
            s.starttls(context=tls_context())
            s.ehlo("client.test")
            s.mail("alice@" + DOMAIN)
            code, msg = s.rcpt("someone@foreign.test")
            self.assertEqual(code, 554)

    def test_implicit_tls_submissions(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.submissions, timeout=30, context=tls_context()) as s:
            s.ehlo("client.test")
            self.assertEqual(s.login("alice@" + DOMAIN, "alice-pw")[0], 235)
            s.sendmail("alice@" + DOMAIN, ["alice@" + DOMAIN], b"Subject: over 465\r\n\r\nhi\r\n")
        maildir = self.inst.path("mail", DOMAIN, "alice", "new")
        self.assertTrue(wait_until(lambda: os.path.isdir(maildir) and any(
            b"over 465" in open(os.path.join(maildir, f), "rb").read() for f in os.listdir(maildir)),
            timeout=15))
        found = [open(os.path.join(maildir, f), "rb").read() for f in os.listdir(maildir)]
        msg = [m for m in found if b"over 465" in m][0]
        self.assertIn(b"with ESMTPSA", msg)
        self.assertIn(b"(Authenticated sender: alice@example.test)", msg)

    def test_openssl_s_client_starttls(self):
        r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect",
                            "127.0.0.1:%d" % self.submission, "-brief"],
                           input="QUIT\n", capture_output=True, text=True, timeout=30)
        self.assertIn("Protocol version: TLSv1.3", r.stdout + r.stderr)

    def test_starttls_injection_ignored(self):
        sock = socket.create_connection(("127.0.0.1", self.submission), timeout=10)
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO client.test\r\n")
        while f.readline()[3:4] == b"-":
            pass
        sock.sendall(b"STARTTLS\r\nRSET\r\n")             # RSET pipelined into the cleartext
        self.assertTrue(f.readline().startswith(b"220"))
        tls = tls_context().wrap_socket(sock, server_hostname="mx.example.test")
        tls.sendall(b"NOOP\r\n")
        reply = tls.recv(512)
        self.assertTrue(reply.startswith(b"250"), reply)   # the NOOP's, not the injected RSET's
        self.assertNotIn(b"\r\n250", reply.rstrip(b"\r\n")[3:])
        tls.close()

    @unittest.skipUnless(shutil.which("doveadm") and is_root(), "needs doveadm (dovecot-core) and root")
    def test_doveadm_auth_test(self):
        sock = self.inst.path("queue", "private", "auth")
        ok = subprocess.run(["doveadm", "auth", "test", "-a", sock, "alice@" + DOMAIN, "alice-pw"],
                            capture_output=True, text=True)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("auth succeeded", ok.stdout + ok.stderr)
        bad = subprocess.run(["doveadm", "auth", "test", "-a", sock, "alice@" + DOMAIN, "nope"],
                             capture_output=True, text=True)
        self.assertNotEqual(bad.returncode, 0)

    @unittest.skipUnless(is_root(), "privilege checks run as root")
    def test_authd_confined_and_hashes_private(self):
        i = self.inst
        import pwd
        auth = pwd.getpwnam("postern-auth")
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and os.path.exists("/proc/%s/cmdline" % p)
                and os.path.basename(open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")[0]) == b"authd"
                and i.config_dir.encode() in open("/proc/%s/cmdline" % p, "rb").read()]
        self.assertEqual(len(pids), 1)
        st = proc_status(pids[0])
        self.assertEqual(st["Uid"].split()[0], str(auth.pw_uid))
        self.assertEqual(int(st["CapEff"], 16), 0)
        self.assertEqual(os.readlink("/proc/%d/root" % pids[0]), os.path.realpath(i.path("auth")))
        passwd = os.stat(i.path("auth", "passwd"))
        self.assertEqual(passwd.st_uid, auth.pw_uid)
        self.assertEqual(passwd.st_mode & 0o077, 0)            # smtpd (postern) cannot read it


    def test_imapd_socket_in_mail_base_carries_quota(self):
        # imapd is chrooted in the mail base: the same authd listens there too (master.cf's
        # "auth,$virtual_mailbox_base/.postern/auth"), and tells imapd the user's quota
        i = self.inst
        path = i.path("mail", ".postern", "auth")
        st = os.stat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(st.st_mode & 0o777, 0o600)
        if is_root():
            import pwd
            self.assertEqual(st.st_uid, pwd.getpwnam("vmail").pw_uid)
        conn = AuthConnection(path)
        replies = []
        for rid, service in ((1, "imap"), (2, "smtp")):
            conn.auth_plain(rid, "dave@" + DOMAIN, "dave-pw", service=service)
            replies.append(conn.reply())
        conn.close()
        self.assertEqual(replies[0], b"OK\t1\tuser=dave@" + DOMAIN.encode()
                         + b"\tuserdb_quota_rule=*:bytes=10485760")
        self.assertEqual(replies[1], b"OK\t2\tuser=dave@" + DOMAIN.encode())


class SubmissionPolicyTest(unittest.TestCase):
    """Senders owned by other logins are refused; authd being away is a temporary failure."""

    def setUp(self):
        self.inst = Instance("policy")
        i = self.inst
        with open(os.path.join(i.config_dir, "sender_logins"), "w") as f:
            f.write("alice@%s alice@%s\nbob@%s bob@%s\n" % ((DOMAIN,) * 4))
        i.postctl("map", os.path.join(i.config_dir, "sender_logins"))
        i.set_main_cf(smtpd_sender_login_maps="hash:$config_directory/sender_logins",
                      smtpd_sender_restrictions="reject_sender_login_mismatch")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        self.submission = i.port_base + 587

    def tearDown(self):
        self.inst.cleanup()

    def session(self):
        s = smtplib.SMTP("127.0.0.1", self.submission, timeout=30)
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        return s

    def test_sender_login_mismatch(self):
        self.inst.start()
        with self.session() as s:
            self.assertEqual(s.login("alice@" + DOMAIN, "alice-pw")[0], 235)
            s.mail("bob@" + DOMAIN)
            code, msg = s.rcpt("alice@" + DOMAIN)
            self.assertEqual(code, 553)
            self.assertIn(b"not owned by user alice@example.test", msg)
            s.rset()
            s.mail("alice@" + DOMAIN)
            self.assertEqual(s.rcpt("someone@foreign.test")[0], 250)

    def test_authd_down_is_temporary(self):
        i = self.inst
        with open(os.path.join(i.config_dir, "master.cf")) as f:
            lines = [l for l in f.read().splitlines() if not l.startswith(("auth ", "auth,"))]
        with open(os.path.join(i.config_dir, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        i.start()
        with self.session() as s:
            code, msg = s.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(
                b"\0alice@example.test\0alice-pw").decode())
            self.assertEqual(code, 454)
            self.assertIn(b"4.7.0", msg)


@unittest.skipUnless(shutil.which("doveadm") and is_root(), "needs doveadm (dovecot-core) and root")
class SlowHashTest(unittest.TestCase):
    """Password checks run beside the event loop: a costly ARGON2ID check does not hold up
    a cheap SHA512-CRYPT one that came after it on the same connection."""

    def setUp(self):
        self.inst = Instance("slowhash")
        i = self.inst
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        # Dovecot's own ARGON2ID (m=64 MiB, t=3): about 100 ms, some 20 times SHA512-CRYPT's cost
        argon = subprocess.run(["doveadm", "pw", "-s", "ARGON2ID", "-p", "erin-pw"],
                               capture_output=True, text=True, check=True).stdout.strip()
        self.assertTrue(argon.startswith("{ARGON2ID}$argon2id$"), argon)
        with open(i.path("auth", "passwd"), "a") as f:
            f.write("erin@%s:%s::::::\n" % (DOMAIN, argon))
        i.start()
        assert wait_until(lambda: os.path.exists(i.path("queue", "private", "auth")), timeout=10)

    def tearDown(self):
        self.inst.cleanup()

    def test_cheap_check_answered_before_costly_one(self):
        conn = AuthConnection(self.inst.path("queue", "private", "auth"))
        conn.auth_plain(1, "erin@" + DOMAIN, "erin-pw", service="smtp")
        conn.auth_plain(2, "alice@" + DOMAIN, "alice-pw", service="smtp")
        replies = [conn.reply(), conn.reply()]
        conn.close()
        self.assertEqual(replies, [b"OK\t2\tuser=alice@" + DOMAIN.encode(),
                                   b"OK\t1\tuser=erin@" + DOMAIN.encode()])


class BruteForceTest(unittest.TestCase):
    """Password guessing is slowed down and then locked out, per client address and per user."""

    def setUp(self):
        self.inst = Instance("brute")
        i = self.inst
        i.set_main_cf(auth_failure_limit="3", auth_failure_delay="1s", auth_failure_delay_max="1s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        i.postctl("user", "add", "carol@" + DOMAIN, "--password-stdin", input="carol-pw\n")
        i.start()
        assert wait_until(lambda: os.path.exists(i.path("queue", "private", "auth")), timeout=10)

    def tearDown(self):
        self.inst.cleanup()

    def auth(self, user, password, rip):
        # rip is only a field of the request (RFC 5737 documentation addresses): nothing is contacted
        return subprocess.run(["doveadm", "auth", "test", "-a", self.inst.path("queue", "private", "auth"),
                               "-x", "rip=" + rip, user, password], capture_output=True, text=True).returncode

    def test_guessing_is_locked_out(self):
        for guess in ("a", "b", "c"):
            self.assertNotEqual(self.auth("alice@" + DOMAIN, guess, "192.0.2.7"), 0)
        # locked: even the right password is refused from that address, for that user
        self.assertNotEqual(self.auth("alice@" + DOMAIN, "alice-pw", "192.0.2.7"), 0)
        self.assertNotEqual(self.auth("alice@" + DOMAIN, "alice-pw", "198.51.100.9"), 0)
        self.assertNotEqual(self.auth("carol@" + DOMAIN, "carol-pw", "192.0.2.7"), 0)
        # another user from another address is not affected
        self.assertEqual(self.auth("carol@" + DOMAIN, "carol-pw", "198.51.100.9"), 0)
        log = self.inst.log()
        self.assertIn("lockout", log)
        self.assertIn("rip=192.0.2.7", log)
        self.assertEqual(log.count("login failed: user=<alice@example.test>"), 3)

    def test_many_delayed_failures_do_not_block_a_shared_connection(self):
        # one connection, as an smtpd multiplexes all its sessions: 70 guesses from 70 addresses
        # wait out their delays; a real user's login on the same connection must still go through
        conn = AuthConnection(self.inst.path("queue", "private", "auth"))
        for k in range(70):
            conn.auth_plain(k + 1, "guess%d@example.test" % k, "x", service="smtp",
                            rip="198.18.%d.%d" % (k // 200, k % 200 + 1))
        conn.auth_plain(1000, "carol@" + DOMAIN, "carol-pw", service="smtp", rip="203.0.113.5")
        replies = {}
        while 1000 not in replies:
            line = conn.reply()
            replies[int(line.split(b"\t")[1])] = line
        conn.close()
        self.assertTrue(replies[1000].startswith(b"OK\t1000"), replies[1000])
        self.assertFalse(any(b"Too many requests" in r for r in replies.values()))


@unittest.skipUnless(is_root() and shutil.which("postfix") and os.path.exists(
    os.path.join(os.environ.get("POSTERN_SOURCE", "../.."), "..", "shared", "peers", "postfix", "setup.sh")),
    "needs root, Debian's postfix and ../shared/peers")
class PostfixUsesAuthdTest(unittest.TestCase):
    """A real Postfix authenticates its SMTP clients through our authd (smtpd_sasl_type = dovecot)."""

    def setUp(self):
        self.inst = Instance("pfauth")
        i = self.inst
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        i.start()
        assert wait_until(lambda: os.path.exists(i.path("queue", "private", "auth")), timeout=10)
        # let the postfix user reach the socket (the test's doing: an admin would choose a group)
        os.chmod(i.path("queue", "private"), 0o711)
        os.chmod(i.path("queue", "private", "auth"), 0o666)
        peers = os.path.join(os.environ.get("POSTERN_SOURCE", "../.."), "..", "shared", "peers", "postfix")
        self.peer_env = dict(os.environ, PEER_BASE=os.path.join(i.base, "postfix"),
                             PEER_PORT=str(i.port_base + 2525))
        self.peers = os.path.abspath(peers)
        subprocess.run([os.path.join(self.peers, "setup.sh")], env=self.peer_env, check=True,
                       capture_output=True)
        conf = os.path.join(i.base, "postfix", "etc")
        subprocess.run(["postconf", "-c", conf, "-e", "smtpd_sasl_auth_enable=yes",
                        "smtpd_sasl_type=dovecot", "smtpd_sasl_path=" + i.path("queue", "private", "auth"),
                        "smtpd_relay_restrictions=permit_sasl_authenticated, reject_unauth_destination",
                        "smtpd_tls_auth_only=no"], check=True)
        subprocess.run(["postfix", "-c", conf, "reload"], check=True, capture_output=True)
        time.sleep(1)

    def tearDown(self):
        subprocess.run([os.path.join(self.peers, "teardown.sh")], env=self.peer_env, capture_output=True)
        self.inst.cleanup()

    def test_postfix_sasl_through_authd(self):
        port = str(self.inst.port_base + 2525)
        for mech in ("PLAIN", "LOGIN"):
            r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", port, "--quit-after", "AUTH",
                                "--auth", mech, "--auth-user", "alice@" + DOMAIN, "--auth-password", "alice-pw"],
                               capture_output=True, text=True)
            self.assertIn("235 2.7.0", r.stdout, r.stdout + r.stderr)
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", port, "--quit-after", "AUTH",
                            "--auth", "PLAIN", "--auth-user", "alice@" + DOMAIN, "--auth-password", "wrong"],
                           capture_output=True, text=True)
        self.assertIn("535 5.7.8", r.stdout)


if __name__ == "__main__":
    main()
