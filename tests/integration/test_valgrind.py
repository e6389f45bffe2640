"""Valgrind memcheck over a busy instance: no memory errors and no leaks in the
long-running daemons (smtpd, qmgr, authd, virtual, smtp, imapd).

LeakSanitizer cannot work inside the daemons' chroot (no /proc), so the other
integration tests run with detect_leaks=0; valgrind can. The instance's
daemon_directory is a directory of wrapper scripts made here: each execs
valgrind on the real daemon with the arguments, listening descriptors and
POSTERN_* environment master gave it (master's parent-death signal survives
the exec; valgrind opens its log before the daemon chroots). master itself
runs natively: postctl knows master by argv[0] in /proc/PID/cmdline (a pid
file naming some other process must not be signalled), and under valgrind
that is /usr/bin/valgrind.bin; the check is not weakened for a test.
valgrind 3.19 does not know openat2, so the Maildir code takes its O_NOFOLLOW
fallback here (valgrind warns about syscall 437; that is not an error).

Traffic, from a few client threads: SMTP on 25 (plain and STARTTLS; messages
delivered to Maildirs, unknown users, a SIZE over a quota refused by virtual's
quota-status policy service, a bad command, a refused relay from
outside mynetworks, connections cut mid-command), submission on 587 (STARTTLS
and AUTH PLAIN with good and bad passwords; relayed mail goes out through the
smtp agent to a sink, which refuses some recipients (qmgr bounces to the
sender) and defers others) and 465, the sendmail command (qmgr's maildrop
pickup), IMAP on 143 and 993 (LOGIN, LIST, SELECT,
FETCH, SEARCH, STORE, IDLE/DONE, LOGOUT; STARTTLS; wrong passwords). Then
`postctl stop`: every daemon leaves through service_main's normal return and
valgrind writes its summary, which must say 0 errors and nothing definitely
or indirectly lost. A leak of one block per connection cannot hide there.

Skipped without valgrind, and for a sanitizer build (ASan and valgrind do not
mix). valgrind.supp next to this file lists what is not ours.
"""
import glob
import imaplib
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import unittest

from outbound_helpers import FakeServer
from postern_test import BIN, Instance, main, wait_until

DOMAIN = "example.test"
REMOTE = "remote.example.net"
OUTSIDE = "127.0.0.2"                   # outside mynetworks = 127.0.0.1/32
THREADS = 3
# Sessions per kind; valgrind makes each daemon 20-50 times slower, so these are modest.
SMTP_SESSIONS = int(os.environ.get("POSTERN_VG_SMTP", "128"))
SENDMAIL_RUNS = int(os.environ.get("POSTERN_VG_SENDMAIL", "8"))
SUBMISSION_SESSIONS = int(os.environ.get("POSTERN_VG_SUBMISSION", "48"))
IMAP_SESSIONS = int(os.environ.get("POSTERN_VG_IMAP", "64"))
VALGRIND_DAEMONS = ("smtpd", "qmgr", "authd", "virtual", "smtp", "imapd", "policyd")
CHECKED = ("smtpd", "qmgr", "authd", "virtual", "smtp", "imapd")   # must have run
HERE = os.path.dirname(os.path.abspath(__file__))
SUPPRESSIONS = os.path.join(HERE, "valgrind.supp")


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_port_open(port):
    """Implicit-TLS ports say nothing before the handshake: open once one completes."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with tls_context().wrap_socket(s) as t:
                return bool(t.recv(512))
    except OSError:
        return False


def sanitizer_build():
    r = subprocess.run(["ldd", os.path.join(BIN, "smtpd")], capture_output=True, text=True)
    return "libasan" in r.stdout or "libubsan" in r.stdout


def skip_reason():
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    if not os.path.exists(os.path.join(BIN, "smtpd")):
        return "no smtpd in %s" % BIN
    if sanitizer_build():
        return "POSTERN_BIN is a sanitizer build: valgrind and ASan do not mix"
    return None


def write_wrappers(wrap_dir, log_dir):
    """daemon_directory of scripts: valgrind for the daemons, plain exec for the rest."""
    os.makedirs(wrap_dir)
    valgrind = [shutil.which("valgrind"), "--tool=memcheck", "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                "--track-origins=yes", "--num-callers=30", "--vgdb=no", "--child-silent-after-fork=yes",
                "--suppressions=" + SUPPRESSIONS]
    for name in sorted(os.listdir(BIN)):
        real = os.path.join(BIN, name)
        if not os.access(real, os.X_OK) or os.path.isdir(real):
            continue
        if name in VALGRIND_DAEMONS:
            cmd = valgrind + ["--log-file=%s/vg.%s.%%p" % (log_dir, name), real]
        else:
            cmd = [real]
        path = os.path.join(wrap_dir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n# test_valgrind: %s under valgrind memcheck\nexec %s \"$@\"\n"
                    % (name, " ".join("'%s'" % c for c in cmd)))
        os.chmod(path, 0o755)


def parse_log(path):
    """(program, pid, errors, definitely lost bytes, indirectly lost bytes, complete) of one log."""
    with open(path, errors="replace") as f:
        text = f.read()
    m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    errors = int(m.group(1).replace(",", "")) if m else None

    def lost(kind):
        m = re.search(r"%s lost: ([\d,]+) bytes" % kind, text)
        return int(m.group(1).replace(",", "")) if m else 0
    program, pid = os.path.basename(path).split(".")[1:3]
    return program, int(pid), errors, lost("definitely"), lost("indirectly"), text


def excerpt(text, limit=6000):
    """The error and leak records of a log (not its banner), bounded."""
    keep = [l for l in text.splitlines() if not re.match(r"==\d+== (Memcheck|Copyright|Using|Command|Parent)", l)]
    out = "\n".join(keep)
    return out if len(out) <= limit else out[:limit] + "\n[... %d more bytes]" % (len(out) - limit)


@unittest.skipIf(skip_reason(), skip_reason())
class ValgrindTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = FakeServer()
        cls.inst = i = Instance("valgrind")
        cls.log_dir = os.path.join(i.base, "valgrind")
        os.makedirs(cls.log_dir)
        write_wrappers(os.path.join(i.base, "daemons"), cls.log_dir)
        i.set_main_cf(daemon_directory=os.path.join(i.base, "daemons"),
                      mynetworks="127.0.0.1/32",
                      relayhost="[127.0.0.1]:%d" % cls.sink.port,
                      auth_failure_delay="0", auth_lockout_time="0",
                      smtpd_client_connection_rate_limit="0",
                      # RCPT asks virtual's quota-status policy service (smtpd's policy client)
                      smtpd_recipient_restrictions="check_policy_service unix:private/quota-status",
                      # valgrind's leak check at exit takes seconds: no SIGKILL before it ends
                      graceful_stop_timeout="90s")
        with open(os.path.join(i.config_dir, "master.cf")) as f:
            master = f.read()
        with open(os.path.join(i.config_dir, "master.cf"), "w") as f:
            f.write(master.replace("#quota-status unix", "quota-status unix"))
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "dave@" + DOMAIN, "--quota", "1k", "--password-stdin", input="dave-pw\n")
        for user in ("alice", "bob"):
            i.postctl("user", "add", "%s@%s" % (user, DOMAIN), "--password-stdin", input=user + "-pw\n")
        try:
            i.postctl("start")
            assert wait_until(lambda: all(i.port_open(i.port_base + p) for p in (25, 587, 143))
                              and all(tls_port_open(i.port_base + p) for p in (465, 993)),
                              timeout=120, interval=1), "ports not open under valgrind; log:\n" + i.log()
            with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=120) as s:     # something to FETCH
                for n in range(3):
                    s.sendmail("a@outside.test", ["alice@" + DOMAIN],
                               b"Subject: seed %d\r\nFrom: a@outside.test\r\n\r\nhello\r\n" % n)
            assert wait_until(lambda: cls.delivered("alice") >= 3, timeout=120), i.log()
        except BaseException:
            i.cleanup()                 # unittest does not call tearDownClass then
            cls.sink.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.sink.close()

    @classmethod
    def delivered(cls, user):
        total = 0
        for d in ("new", "cur"):
            try:
                total += len(os.listdir(cls.inst.path("mail", DOMAIN, user, d)))
            except FileNotFoundError:   # made by the first delivery
                pass
        return total

    # --- SMTP ---------------------------------------------------------------------------

    def smtp_session(self, n):
        """Port 25: delivery, STARTTLS, unknown user, bad command, refused relay, a cut."""
        i = self.inst
        kind = n % 8
        if kind == 6:                   # from outside mynetworks: no relay
            with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=120, source_address=(OUTSIDE, 0)) as s:
                s.ehlo("outside.test")
                s.mail("spam@outside.test")
                code = s.rcpt("victim@" + REMOTE)[0]
                self.assertEqual(code, 554, "relay from outside mynetworks")
                return "refused"
        s = smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=120)
        try:
            s.ehlo("client.test")
            if kind in (1, 5):
                s.starttls(context=tls_context())
                s.ehlo("client.test")
            if kind == 2:
                self.assertEqual(s.docmd("FROBNICATE")[0], 502)
            if kind == 3:
                s.mail("a@outside.test", ["SIZE=5000"])
                self.assertEqual(s.rcpt("nobody@" + DOMAIN)[0], 550)
                self.assertEqual(s.rcpt("dave@" + DOMAIN)[0], 552, "over dave's 1k quota")
                s.rset()
            if kind == 7:
                s.mail("a@outside.test")
                s.sock.sendall(b"RCPT TO:<alice@exa")            # cut off mid-command
                s.close()
                return "cut"
            user = "alice" if n % 2 else "bob"
            s.sendmail("a@outside.test", [user + "@" + DOMAIN],
                       b"Subject: vg %d\r\nFrom: a@outside.test\r\n\r\nbody %d\r\n" % (n, n))
            s.quit()
            return "delivered:" + user
        finally:
            s.close()

    def submission_session(self, n):
        """587 STARTTLS + AUTH PLAIN (good: relay out; bad: 535); some over 465. The sink
        refuses some recipients (550: qmgr bounces to alice) or defers them (450)."""
        i = self.inst
        kind = n % 6
        if kind == 5:
            s = smtplib.SMTP_SSL("127.0.0.1", i.port_base + 465, timeout=120, context=tls_context())
        else:
            s = smtplib.SMTP("127.0.0.1", i.port_base + 587, timeout=120)
        try:
            s.ehlo("laptop.test")
            if kind != 5:
                s.starttls(context=tls_context())
                s.ehlo("laptop.test")
            if kind == 4:
                with self.assertRaises(smtplib.SMTPAuthenticationError):
                    s.login("alice@" + DOMAIN, "wrong")
                s.quit()
                return "badauth"
            s.login("alice@" + DOMAIN, "alice-pw")
            rcpt, what = {2: ("later%d@%s", "deferred"), 3: ("gone%d@%s", "bounced")}.get(
                kind, ("friend%d@%s", "relayed"))
            rcpt = rcpt % (n, REMOTE)
            if what == "deferred":
                self.sink.rcpt_replies[rcpt] = "450 4.2.0 <%s>: try later" % rcpt
            if what == "bounced":
                self.sink.rcpt_replies[rcpt] = "550 5.1.1 <%s>: no such user" % rcpt
            s.sendmail("alice@" + DOMAIN, [rcpt],
                       b"Subject: out %d\r\nFrom: alice@example.test\r\n\r\nbody\r\n" % n)
            s.quit()
            return what
        finally:
            s.close()

    def table_change(self, n):
        """Mid-traffic, as an admin would: a new user and an alias replace their tables; the
        daemons reopen them or retire (and exit, under valgrind too) for fresh ones."""
        i = self.inst
        i.postctl("user", "add", "carol@" + DOMAIN, "--password-stdin", input="carol-pw\n")
        i.postctl("alias", "add", "sales@" + DOMAIN, "carol@" + DOMAIN)
        deadline = time.time() + 120
        while True:                     # a 4xx while a table is being reloaded is retried, as a client would
            try:
                with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=120) as s:
                    s.sendmail("a@outside.test", ["carol@" + DOMAIN, "sales@" + DOMAIN],
                               b"Subject: new user\r\nFrom: a@outside.test\r\n\r\nwelcome\r\n")
                return "tables"
            except smtplib.SMTPRecipientsRefused as e:
                code = min(c for c, _ in e.recipients.values())
                self.assertLess(code, 500, "permanent refusal of a user just added: %r" % e.recipients)
                self.assertLess(time.time(), deadline, "still refused: %r" % e.recipients)
                time.sleep(1)

    def sendmail_run(self, n):
        """The sendmail command: maildrop/, picked up by qmgr."""
        env = dict(os.environ, POSTERN_CONFIG=self.inst.config_dir)
        r = subprocess.run([os.path.join(BIN, "sendmail"), "-f", "cron@" + DOMAIN, "bob@" + DOMAIN],
                           input=b"Subject: cron %d\n\nfrom sendmail\n" % n, capture_output=True,
                           env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return "sendmail"

    # --- IMAP ---------------------------------------------------------------------------

    def idle(self, m):
        """IDLE, then DONE: imaplib of Python 3.11 has no idle()."""
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        self.assertTrue(m.readline().startswith(b"+"))
        m.send(b"DONE\r\n")
        while True:
            line = m.readline()
            self.assertTrue(line, "connection closed during IDLE")
            if line.startswith(tag + b" "):
                self.assertIn(b" OK", line)
                return

    def imap_session(self, n):
        i = self.inst
        kind = n % 8
        if kind in (1, 5):
            m = imaplib.IMAP4_SSL("127.0.0.1", i.port_base + 993, timeout=120, ssl_context=tls_context())
        else:
            m = imaplib.IMAP4("127.0.0.1", i.port_base + 143, timeout=120)
        try:
            if kind == 2:
                m.starttls(ssl_context=tls_context())
            if kind == 7:
                with self.assertRaises(imaplib.IMAP4.error):
                    m.login("alice@" + DOMAIN, "wrong")
                m.logout()
                return "badlogin"
            m.login("alice@" + DOMAIN, "alice-pw")
            m.list()
            self.assertEqual(m.select("INBOX")[0], "OK")
            m.fetch("1:*", "(FLAGS ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            if kind in (0, 3):
                m.fetch("1", "(BODY[] RFC822.SIZE INTERNALDATE BODYSTRUCTURE)")
            self.assertEqual(m.search(None, "SUBJECT", "seed")[0], "OK")
            m.uid("SEARCH", "UNSEEN")
            m.store("1", "+FLAGS", "(\\Flagged)")
            m.store("1", "-FLAGS", "(\\Flagged)")
            if kind in (4, 6):
                self.idle(m)
            m.logout()
            return "login"
        finally:
            try:
                m.shutdown()
            except OSError:
                pass

    # --- the run ------------------------------------------------------------------------

    def run_all(self, jobs):
        """Run (function, n) jobs in THREADS threads; outcome counts and failures."""
        lock = threading.Lock()
        outcomes, failures = {}, []
        pending = list(jobs)

        def worker():
            while True:
                with lock:
                    if not pending:
                        return
                    fn, n = pending.pop(0)
                try:
                    what = fn(n)
                except Exception as e:          # an assertion or a protocol failure: reported below
                    with lock:
                        failures.append("%s(%d): %r" % (fn.__name__, n, e))
                    continue
                with lock:
                    outcomes[what] = outcomes.get(what, 0) + 1
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcomes, failures

    def test_daemons_clean_under_valgrind(self):
        i = self.inst
        jobs = []
        for n in range(max(SMTP_SESSIONS, SUBMISSION_SESSIONS, IMAP_SESSIONS)):  # interleaved
            if n < SENDMAIL_RUNS:
                jobs.append((self.sendmail_run, n))
            if n < SMTP_SESSIONS:
                jobs.append((self.smtp_session, n))
            if n < SUBMISSION_SESSIONS:
                jobs.append((self.submission_session, n))
            if n < IMAP_SESSIONS:
                jobs.append((self.imap_session, n))
        jobs.insert(len(jobs) // 3, (self.table_change, 0))
        outcomes, failures = self.run_all(jobs)
        self.assertEqual(failures, [], "client failures:\n" + "\n".join(failures[:20]))

        # alice: the seeds, port 25 mail, bounces of her refused mail; bob: port 25 and sendmail
        want = {"alice": 3 + outcomes.get("delivered:alice", 0) + outcomes.get("bounced", 0),
                "bob": outcomes.get("delivered:bob", 0) + outcomes.get("sendmail", 0),
                "carol": 1}             # carol@ and sales@ (her alias) are one delivery
        relayed, deferred = outcomes.get("relayed", 0), outcomes.get("deferred", 0)

        def arrived():
            return (all(self.delivered(u) >= want[u] for u in want) and len(self.sink.messages) >= relayed
                    and i.log().count("status=deferred") >= deferred)
        self.assertTrue(wait_until(arrived, timeout=180, interval=0.5),
                        "not all mail arrived: alice %d/%d, bob %d/%d, sink %d/%d, deferred %d/%d; log:\n%s" % (
                            self.delivered("alice"), want["alice"], self.delivered("bob"), want["bob"],
                            len(self.sink.messages), relayed, i.log().count("status=deferred"), deferred,
                            i.log()[-5000:]))

        r = i.postctl_raw("stop", timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("did not stop in time", i.log())
        self.check_logs(outcomes)

    def check_logs(self, outcomes):
        logs = sorted(glob.glob(os.path.join(self.log_dir, "vg.*")))
        results = [parse_log(p) for p in logs]
        seen = sorted({r[0] for r in results})
        problems = []
        for program, pid, errors, definite, indirect, text in results:
            if errors is None:
                problems.append("%s[%d]: no valgrind summary (killed before its exit?)\n%s"
                                % (program, pid, excerpt(text)))
            elif errors or definite or indirect:
                problems.append("%s[%d]: %d errors, %d bytes definitely and %d indirectly lost\n%s"
                                % (program, pid, errors, definite, indirect, excerpt(text)))
        smtp = sum(v for k, v in outcomes.items() if k.startswith("delivered") or k in ("refused", "cut"))
        sub = ("relayed", "bounced", "deferred", "badauth")
        retired = self.inst.log().count("retiring:")
        print("\nvalgrind: SMTP sessions %d on 25 (%s), %d on 587/465 (%s), sendmail runs %d; "
              "a user and an alias added mid-traffic (%d daemons retired for fresh tables); "
              "IMAP sessions %d (%d wrong passwords); %d daemon processes checked (%s); "
              "errors %d; bytes definitely lost %d, indirectly lost %d"
              % (smtp, ", ".join("%s %d" % kv for kv in sorted(outcomes.items())
                                 if kv[0].startswith("delivered") or kv[0] in ("refused", "cut")),
                 sum(outcomes.get(k, 0) for k in sub), ", ".join("%s %d" % (k, outcomes.get(k, 0)) for k in sub),
                 outcomes.get("sendmail", 0), retired, outcomes.get("login", 0) + outcomes.get("badlogin", 0),
                 outcomes.get("badlogin", 0), len(results), ", ".join(seen),
                 sum(r[2] or 0 for r in results), sum(r[3] for r in results), sum(r[4] for r in results)))
        for program in CHECKED:
            self.assertIn(program, seen, "no valgrind log for %s" % program)
        self.assertEqual(problems, [], "\n\n".join(problems))
        self.assertIn("status=bounced", self.inst.log())


if __name__ == "__main__":
    main()
