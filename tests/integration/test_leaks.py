"""No memory kept per connection in the long-running daemons: 10,000 SMTP
sessions and 10,000 IMAP logins against one instance, with smtpd's and
imapd's RSS sampled as they go (authd's too, which checks every login).

Each SMTP session says EHLO, MAIL, RCPT, RSET and QUIT; one in ten also
delivers a message, one in ten starts with STARTTLS, one in twenty ends by
dropping the connection mid-command. Each IMAP session logs in, SELECTs INBOX,
FETCHes the envelopes and logs out; one in ten goes over 993 (TLS), one in
twenty is a wrong password. The RSS after the warm-up (the first 1,000) must
not grow by more than a generous bound at the end; the figures are printed.
(LeakSanitizer cannot run in the daemons' chroot, so this and test_valgrind,
which runs the daemons under valgrind memcheck, show that a connection leaves
nothing behind; the fuzz targets run under LeakSanitizer.)
"""
import imaplib
import os
import smtplib
import socket
import ssl
import threading
import unittest

from postern_test import Instance, children_of, cmdline, main, proc_status, wait_until

DOMAIN = "example.test"
SESSIONS = int(os.environ.get("POSTERN_LEAK_SESSIONS", "10000"))
THREADS = 4
SAMPLES = (1000, 2500, 5000, 7500, 10000)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class LeakTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("leaks")
        i.set_main_cf(auth_failure_delay="0", auth_lockout_time="0",
                      smtpd_client_connection_rate_limit="0")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        try:
            i.start()
            assert wait_until(lambda: i.port_open(i.port_base + 143), timeout=15)
            with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:     # something to FETCH
                for n in range(5):
                    s.sendmail("a@outside.test", ["alice@" + DOMAIN], b"Subject: seed %d\r\n\r\nx\r\n" % n)
            assert wait_until(lambda: len(os.listdir(i.path("mail", DOMAIN, "alice", "new"))) >= 5,
                              timeout=20)
        except BaseException:
            i.cleanup()                 # unittest does not call tearDownClass then
            raise

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def pids(self, program, service):
        out = []
        for p in children_of(self.inst.master_pid()):
            try:
                args = cmdline(p)
            except OSError:
                continue
            if os.path.basename(args[0]) == program and (service is None or
                                                         args[args.index("-n") + 1] == service):
                out.append(p)
        return out

    def rss(self, pids):
        return sum(int(proc_status(p)["VmRSS"].split()[0]) for p in pids)

    def run_sessions(self, one, watched):
        """Run SESSIONS calls of one(n) in THREADS threads; RSS (kB) of watched pids at SAMPLES."""
        lock = threading.Lock()
        state = {"next": 0, "done": 0, "errors": 0}
        samples = {}
        pids = watched()

        def worker():
            while True:
                with lock:
                    n = state["next"]
                    if n >= SESSIONS:
                        return
                    state["next"] += 1
                try:
                    one(n)
                except (OSError, smtplib.SMTPException, imaplib.IMAP4.error):
                    with lock:
                        state["errors"] += 1
                with lock:
                    state["done"] += 1
                    done = state["done"]
                    if done in SAMPLES or done == SESSIONS:
                        # the same processes all along: a restart would hide a leak
                        self.assertEqual(watched(), pids, "a daemon was restarted")
                        samples[done] = self.rss(pids)
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return samples, state["errors"]

    def smtp_session(self, n):
        i = self.inst
        if n % 10 == 3:
            s = smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30)
            s.starttls(context=tls_context())
        else:
            s = smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30)
        s.ehlo("leak.test")
        if n % 10 == 0:
            s.sendmail("a@outside.test", ["alice@" + DOMAIN], b"Subject: leak %d\r\n\r\nx\r\n" % n)
        s.mail("a@outside.test")
        s.rcpt("alice@" + DOMAIN)
        if n % 20 == 7:
            s.sock.sendall(b"RCPT TO:<alice@exa")        # cut off mid-command
            s.close()
            return
        s.rset()
        s.quit()

    def imap_session(self, n):
        i = self.inst
        if n % 10 == 5:
            m = imaplib.IMAP4_SSL("127.0.0.1", i.port_base + 993, timeout=30, ssl_context=tls_context())
        else:
            m = imaplib.IMAP4("127.0.0.1", i.port_base + 143, timeout=30)
        try:
            if n % 20 == 9:
                try:
                    m.login("alice@" + DOMAIN, "wrong")
                except imaplib.IMAP4.error:
                    pass
                m.logout()
                return
            m.login("alice@" + DOMAIN, "alice-pw")
            m.select("INBOX", readonly=True)
            m.fetch("1:5", "(ENVELOPE)")
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass

    def sanitized(self, pids):
        with open("/proc/%d/maps" % pids[0]) as f:
            return "libasan" in f.read()

    def bound_kb(self, watched, kb):
        # AddressSanitizer's quarantine holds freed memory (up to 256 MB): RSS says nothing there
        return 1 << 30 if self.sanitized(watched()) else kb

    def report(self, name, samples, errors):
        base = samples.get(SAMPLES[0]) or min(samples.values())
        last = samples[max(samples)]
        print("\n%s: %d sessions, %d errors, RSS kB at %s; growth after warm-up %d kB"
              % (name, SESSIONS, errors, ", ".join("%d:%d" % kv for kv in sorted(samples.items())),
                 last - base))
        return last - base

    def test_smtp_sessions(self):
        watched = lambda: sorted(self.pids("smtpd", str(self.inst.smtp_port)))
        samples, errors = self.run_sessions(self.smtp_session, watched)
        growth = self.report("smtpd", samples, errors)
        self.assertLess(errors, SESSIONS // 100)
        self.assertLess(growth, self.bound_kb(watched, 16 * 1024), "smtpd grew %d kB over %d sessions" % (growth, SESSIONS))

    def test_imap_logins(self):
        watched = lambda: sorted(self.pids("imapd", None) + self.pids("authd", None))
        samples, errors = self.run_sessions(self.imap_session, watched)
        growth = self.report("imapd+authd", samples, errors)
        self.assertLess(errors, SESSIONS // 100)
        self.assertLess(growth, self.bound_kb(watched, 24 * 1024), "imapd+authd grew %d kB over %d logins" % (growth, SESSIONS))


if __name__ == "__main__":
    main()
