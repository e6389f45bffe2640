"""Instance life cycle through postctl: init, check, conf, map, start, status,
reload, stop, and master's supervision (restart, back-off, privileges)."""
import json
import os
import signal
import smtplib
import socket
import stat
import subprocess
import time
import unittest

from postern_test import (Instance, children_of, cmdline, is_root, main, proc_status,
                          wait_until)


class InitTest(unittest.TestCase):
    def setUp(self):
        self.inst = Instance("init")

    def tearDown(self):
        self.inst.cleanup()

    def test_layout(self):
        i = self.inst
        for f in ("etc/main.cf", "etc/master.cf", "etc/tls/cert.pem", "etc/tls/key.pem",
                  "etc/virtual_domains.db", "etc/virtual_mailboxes.db", "etc/virtual_aliases.db"):
            self.assertTrue(os.path.isfile(i.path(f)), f)
        for d in ("incoming", "active", "deferred", "hold", "corrupt", "maildrop", "private", "pid"):
            self.assertTrue(os.path.isdir(i.path("queue", d)), d)
        self.assertEqual(stat.S_IMODE(os.stat(i.path("queue", "incoming")).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(i.path("etc/tls/key.pem")).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(i.path("auth")).st_mode), 0o700)
        with open(i.path("etc/master.cf")) as f:
            self.assertIn("%d " % i.smtp_port, f.read())
        if is_root():
            import pwd
            self.assertEqual(os.stat(i.path("queue", "incoming")).st_uid, pwd.getpwnam("postern").pw_uid)
            self.assertEqual(os.stat(i.path("mail")).st_uid, pwd.getpwnam("vmail").pw_uid)
            self.assertEqual(os.stat(i.path("auth")).st_uid, pwd.getpwnam("postern-auth").pw_uid)
        # the certificate is a real one for the host name
        out = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in", i.path("etc/tls/cert.pem")],
                             capture_output=True, text=True, check=True).stdout
        self.assertIn("mx.example.test", out)

    def test_rerun_refused_without_force(self):
        r = self.inst.postctl_raw("init", "--dir", self.inst.dir, use_c=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--force", r.stderr)
        marker = self.inst.path("etc", "virtual_domains")
        with open(marker, "w") as f:
            f.write("kept.example 1\n")
        r = self.inst.postctl_raw("init", "--dir", self.inst.dir, "--force",
                                  "--port-base", str(self.inst.port_base), use_c=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(marker) as f:
            self.assertIn("kept.example", f.read())      # --force keeps the tables

    def test_bad_option_is_usage_error(self):
        r = self.inst.postctl_raw("init", "--port-base", "abc", use_c=False)
        self.assertEqual(r.returncode, 2)

    def test_check_ok_then_finds_problems(self):
        i = self.inst
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("configuration OK", r.stdout)
        with open(i.path("auth", "passwd"), "a") as f:
            f.write("old@example.test:{PLAIN}secret::::::\n")     # migrated from an old setup
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 0)
        self.assertIn("passwd:1: old@example.test has a weak or plaintext password (PLAIN)", r.stdout)
        os.chmod(i.path("queue", "deferred"), 0o755)
        os.chmod(i.path("etc/tls/key.pem"), 0o644)
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 1)
        self.assertIn("queue/deferred: mode 0755, expected 0700; fix: chmod 0700", r.stdout)
        self.assertIn("key.pem: private key readable by others", r.stdout)

    def test_check_wants_a_postmaster(self):
        # notices go to postmaster@$myorigin (mydestination: aliases only); none yet -> a warning
        i = self.inst
        r = i.postctl_raw("check")
        self.assertIn("2bounce_notice_recipient = postmaster: postmaster@mx.example.test is neither an "
                      "alias nor a mailbox here", r.stdout)
        self.assertIn("fix: postctl alias add postmaster@mx.example.test", r.stdout)
        i.postctl("domain", "add", "example.test")
        i.postctl("user", "add", "admin@example.test", "--password-stdin", input="pw\n")
        i.postctl("alias", "add", "postmaster@mx.example.test", "admin@example.test")
        i.set_main_cf(delay_notice_recipient="noc@example.test")
        r = i.postctl_raw("check")
        self.assertNotIn("2bounce_notice_recipient", r.stdout)
        self.assertIn("delay_notice_recipient = noc@example.test: noc@example.test is neither", r.stdout)

    def test_check_reports_file_and_line(self):
        i = self.inst
        with open(os.path.join(i.config_dir, "main.cf"), "a") as f:
            f.write("message_size_limit = lots\n")
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 1)
        with open(os.path.join(i.config_dir, "main.cf")) as f:
            lines = len(f.read().splitlines())
        self.assertIn("main.cf:%d:" % lines, r.stdout)
        r = i.postctl_raw("start")
        self.assertEqual(r.returncode, 1)
        self.assertIn("main.cf:%d:" % lines, r.stderr)

    def test_check_asks_each_daemon(self):
        # a configuration only the daemon can judge: an open relay; smtpd refuses it, so must check
        i = self.inst
        i.set_main_cf(smtpd_relay_restrictions="permit")
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"master\.cf:\d+: service %d: smtpd would not start: .*open relay"
                         % i.smtp_port)
        self.assertNotIn("service %d:" % (i.port_base + 587), r.stdout)   # its -o makes it safe

    def test_check_reports_master_cf_line(self):
        i = self.inst
        with open(os.path.join(i.config_dir, "master.cf"), "a") as f:
            f.write("bogus inet n - y - - smtpd\n")
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stdout, r"master\.cf:\d+:")

    def test_conf(self):
        i = self.inst
        out = i.postctl("conf", "myhostname", "myorigin", "queue_directory")
        self.assertIn("myhostname = mx.example.test", out)
        self.assertIn("myorigin = mx.example.test", out)           # $myhostname expanded
        self.assertIn("queue_directory = %s" % i.path("queue"), out)
        all_params = i.postctl("conf")
        self.assertIn("smtpd_timeout = ", all_params)               # defaults listed too
        set_only = i.postctl("conf", "-n")
        self.assertIn("myhostname = mx.example.test", set_only)
        self.assertNotIn("smtpd_timeout", set_only)
        r = i.postctl_raw("conf", "no_such_parameter")
        self.assertEqual(r.returncode, 1)

    def test_map(self):
        i = self.inst
        src = i.path("etc", "transport")
        with open(src, "w") as f:
            f.write("# comment\nExample.COM smtp:[relay.example]:25\nother.test   discard:\n")
        i.postctl("map", src)
        self.assertTrue(os.path.exists(src + ".db"))
        self.assertEqual(i.postctl("map", "-q", "example.com", "hash:" + src).strip(),
                         "smtp:[relay.example]:25")
        r = i.postctl_raw("map", "-q", "missing.test", src)
        self.assertEqual(r.returncode, 1)
        with open(src, "a") as f:
            f.write("novalue\n")
        r = i.postctl_raw("map", src)
        self.assertEqual(r.returncode, 1)
        self.assertIn("transport:4:", r.stderr)


class RunningTest(unittest.TestCase):
    def setUp(self):
        self.inst = Instance("run")
        self.inst.start()

    def tearDown(self):
        self.inst.cleanup()

    def smtp_children(self):
        """The processes of the port-25 smtp service (submission ones are other services)."""
        master = self.inst.master_pid()
        service = str(self.inst.smtp_port)
        kids = []
        for p in children_of(master):
            try:
                args = cmdline(p)
            except OSError:
                continue                # gone while we looked
            if "-n" in args[:-1] and args[args.index("-n") + 1] == service:
                kids.append(p)
        return kids

    def test_greeting_and_status(self):
        i = self.inst
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=10) as s:
            code, msg = s.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertIn(b"PIPELINING", msg)
        out = i.postctl("status")
        self.assertIn("running, master pid %d" % i.master_pid(), out)
        self.assertRegex(out, r"\n%d\s+inet\s+1/1\s+\d+" % i.smtp_port)
        js = json.loads(i.postctl("status", "--json"))
        self.assertTrue(js["running"])
        svc = [s for s in js["services"] if s["name"] == str(i.smtp_port)][0]
        self.assertEqual(len(svc["processes"]), 1)
        self.assertEqual(svc["processes"][0]["pid"], self.smtp_children()[0])

    def test_start_twice_refused(self):
        r = self.inst.postctl_raw("start")
        self.assertEqual(r.returncode, 1)
        self.assertIn("already running", r.stderr)

    def test_stop(self):
        i = self.inst
        master = i.master_pid()
        # an idle client connected while stopping must not hold the stop up
        idle = socket.create_connection(("127.0.0.1", i.smtp_port))
        idle.recv(512)
        started = time.time()
        i.postctl("stop")
        self.assertLess(time.time() - started, 15)
        self.assertFalse(os.path.exists("/proc/%d" % master))
        self.assertFalse(os.path.exists(i.path("queue", "pid", "master.pid")))
        self.assertFalse(i.port_open(i.smtp_port))
        self.assertIn(b"421", idle.recv(512))
        idle.close()
        r = i.postctl_raw("stop")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not running", r.stderr)
        r = i.postctl_raw("status")
        self.assertEqual(r.returncode, 1)

    def test_restart_after_sigkill(self):
        i = self.inst
        old = self.smtp_children()
        self.assertEqual(len(old), 1)
        os.kill(old[0], signal.SIGKILL)
        new = wait_until(lambda: [p for p in self.smtp_children() if p != old[0]], timeout=10)
        self.assertTrue(new, "smtpd not restarted; log:\n" + i.log())
        self.assertTrue(wait_until(lambda: i.port_open(i.smtp_port)))
        self.assertIn("killed by signal 9", i.log())

    def test_daemons_follow_a_killed_master(self):
        # a client in session must not keep an orphaned smtpd (and its ports) alive
        i = self.inst
        master = i.master_pid()
        kids = children_of(master)
        session = smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30)
        session.ehlo("orphan.example")
        os.kill(master, signal.SIGKILL)
        left = lambda: [p for p in kids if os.path.exists("/proc/%d" % p)
                        and proc_status(p).get("State", "Z")[0] != "Z"]
        self.assertTrue(wait_until(lambda: not left(), timeout=20),
                        "still running after master died: %s" % [cmdline(p) for p in left()])
        session.close()
        i.start()
        self.assertTrue(wait_until(lambda: i.port_open(i.smtp_port), timeout=15), i.log()[-2000:])

    def run_daemon(self, master_pid):
        """smtpd started by hand as master would start it, claiming master_pid as its master."""
        i = self.inst
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        env = dict(os.environ, POSTERN_LISTEN_FDS="1", POSTERN_MASTER_PID=str(master_pid))
        # the listener at fd 3, where master puts it (sh's redirection, then exec: we stay the parent)
        proc = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" "$@" 3<&%d' % sock.fileno(),
                                 os.path.join(i.bin, "smtpd"), "-c", i.config_dir, "-n", "by-hand"],
                                env=env, pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL)
        sock.close()
        return proc

    def test_daemon_born_after_master_died_stops(self):
        # master was killed between fork and the daemon's start-up: the daemon must notice
        gone = subprocess.Popen(["true"])
        gone.wait()
        orphan = self.run_daemon(gone.pid)
        try:
            self.assertEqual(orphan.wait(timeout=20), 0)
        finally:
            orphan.kill()
        self.assertIn("master process (pid %d) went away" % gone.pid, self.inst.log())
        # the control: with its master (us) alive, the same daemon stays up
        kept = self.run_daemon(os.getpid())
        try:
            with self.assertRaises(subprocess.TimeoutExpired):
                kept.wait(timeout=7)        # past the service's periodic parent check
        finally:
            kept.kill()
            kept.wait()

    def listener_inodes(self, pid):
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:"):
                inodes.add(target)
        return inodes

    def test_reload_keeps_sockets_and_applies_config(self):
        i = self.inst
        master = i.master_pid()
        sockets_before = self.listener_inodes(master)
        old_child = self.smtp_children()[0]
        session = smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=10)
        session.ehlo("before.example")
        i.set_main_cf(smtpd_banner="$myhostname ESMTP reloaded-banner")
        i.postctl("reload")
        self.assertTrue(wait_until(lambda: any(p != old_child for p in self.smtp_children())),
                        "no new smtpd after reload; log:\n" + i.log())
        # the session that was open before the reload is still served
        self.assertEqual(session.noop()[0], 250)
        self.assertEqual(session.quit()[0], 221)
        with socket.create_connection(("127.0.0.1", i.smtp_port), timeout=5) as s:
            self.assertIn(b"reloaded-banner", s.recv(512))
        self.assertEqual(i.master_pid(), master)
        self.assertTrue(sockets_before <= self.listener_inodes(master),
                        "listening sockets were replaced by the reload")
        # the old process went away once its session ended
        self.assertTrue(wait_until(lambda: not os.path.exists("/proc/%d" % old_child), timeout=15))

    def test_reload_with_bad_config_refused(self):
        i = self.inst
        i.set_main_cf(smtpd_timeout="forever")
        r = i.postctl_raw("reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("main.cf:", r.stderr)
        self.assertTrue(i.port_open(i.smtp_port))

    @unittest.skipUnless(is_root(), "privilege separation is tested as root")
    def test_children_have_no_privileges(self):
        i = self.inst
        master = i.master_pid()
        # a daemon is root from exec until it drops privileges: wait until all have started
        # smtp, submission, submissions, qmgr, 2 x virtual, auth, imap, imaps, 2 x smtp, 2 x lmtp
        self.assertTrue(wait_until(lambda: i.log().count("daemon started -- service") >= 13, timeout=20),
                        i.log())
        kids = children_of(master)
        self.assertTrue(kids)
        # each daemon is confined where DESIGN.md puts it
        roots = {"smtpd": i.path("queue"), "qmgr": i.path("queue"), "smtp": i.path("queue"),
                 "virtual": i.path("mail"),
                 "authd": i.path("auth"), "imapd": i.path("mail")}
        seen = set()
        for pid in kids:
            program = os.path.basename(cmdline(pid)[0])
            seen.add(program)
            st = proc_status(pid)
            uids = st["Uid"].split()
            self.assertNotIn("0", uids, "%s (pid %d) runs as root: %s" % (cmdline(pid), pid, st["Uid"]))
            self.assertNotIn("0", st["Gid"].split())
            for cap in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, "pid %d %s=%s" % (pid, cap, st[cap]))
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(os.readlink("/proc/%d/root" % pid), os.path.realpath(roots[program]),
                             "%s (pid %d) is not chrooted where it should be" % (program, pid))
        self.assertEqual(seen, set(roots), "not every daemon of the default master.cf is running")
        self.assertEqual(proc_status(master)["Uid"].split()[0], "0")


class BackoffTest(unittest.TestCase):
    def setUp(self):
        self.inst = Instance("backoff")

    def tearDown(self):
        self.inst.cleanup()

    def test_daemon_failing_at_start_is_throttled(self):
        i = self.inst
        # a service whose daemon exits at once (its directory is missing): master must back off
        with open(os.path.join(i.config_dir, "master.cf"), "a") as f:
            f.write("%d inet n - y - - smtpd -o queue_directory=/nonexistent-queue\n" % (i.port_base + 26))
        i.start()
        time.sleep(6)
        starts = i.log().count("/nonexistent-queue")
        self.assertGreater(starts, 0, i.log())
        self.assertLess(starts, 12, "daemon restarted %d times in 6 s: no back-off" % starts)
        self.assertIn("next start in", i.log())
        # the healthy service is unaffected
        self.assertTrue(i.port_open(i.smtp_port))


@unittest.skipUnless(is_root(), "needs root to create an unprivileged user's instance")
class UnprivilegedTest(unittest.TestCase):
    """The same binaries and commands work for an ordinary user."""

    def setUp(self):
        import shutil
        import tempfile
        # binaries where the ordinary user can run them, whatever the build dir's modes
        self.bindir = tempfile.mkdtemp(prefix="postern-bin-")
        os.chmod(self.bindir, 0o755)
        for prog in os.listdir(os.environ.get("POSTERN_BIN", "")) if os.environ.get("POSTERN_BIN") else []:
            shutil.copy2(os.path.join(os.environ["POSTERN_BIN"], prog), self.bindir)
        self.inst = Instance("unpriv", user="nobody", bin_dir=self.bindir)

    def tearDown(self):
        import shutil
        self.inst.cleanup()
        shutil.rmtree(self.bindir, ignore_errors=True)

    def test_lifecycle_as_ordinary_user(self):
        i = self.inst
        self.assertIn("main.cf", os.listdir(i.config_dir))
        r = i.postctl_raw("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        i.start()
        master = i.master_pid()
        self.assertNotEqual(proc_status(master)["Uid"].split()[0], "0")
        self.assertIn("unprivileged mode", i.log())
        i.postctl("domain", "add", "example.test")
        i.postctl("user", "add", "alice@example.test", "--password-stdin", input="pw\n")
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=10) as s:
            self.assertEqual(s.ehlo("x.example")[0], 250)
            s.sendmail("a@outside.test", ["alice@example.test"], b"Subject: unpriv\r\n\r\nhi\r\n")
        new = i.path("mail", "example.test", "alice", "new")
        self.assertTrue(wait_until(lambda: os.path.isdir(new) and os.listdir(new), timeout=15), i.log())
        import pwd
        self.assertEqual(os.stat(new).st_uid, pwd.getpwnam("nobody").pw_uid)
        i.postctl("stop")
        self.assertFalse(os.path.exists("/proc/%d" % master))


if __name__ == "__main__":
    main()
