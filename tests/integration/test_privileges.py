"""Privilege invariants of DESIGN.md section 1, checked on a busy instance (as root only).

Every service of the default master.cf runs (greylisting's policyd too), with a
session open on every port (SMTP 25/587/465, IMAP 143/993), a message just
delivered (qmgr, virtual) and logins done (authd). Then, for every process under
master: only master has uid 0; CapEff/CapPrm/CapInh/CapBnd/CapAmb are empty;
NoNewPrivs is 1; /proc/PID/root is the chroot DESIGN.md names; and the file
access a daemon's identity grants is what DESIGN.md allows: smtpd (and every
`postern` process) can read neither the password file nor a mailbox, imapd and
virtual (`vmail`) cannot read password hashes, authd cannot read mailboxes.
Access is checked twice: by a forked child that takes on the daemon's uid and
gids exactly (setgroups/setresgid/setresuid) and tries to open the files, and
by walking the daemon's own view of the file system (/proc/PID/root), in which
no password file or mailbox may appear at all.
"""
import glob
import imaplib
import os
import smtplib
import socket
import ssl
import unittest

from postern_test import Instance, children_of, cmdline, is_root, main, proc_status, wait_until

DOMAIN = "example.test"
USERS = ("alice", "bob")


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE             # the instance's certificate is self-signed
    return ctx


def can_open_as(uid, gids, path):
    """Whether a process with exactly this uid and these gids can open path for reading."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            os.setgroups(gids[1:])
            os.setresgid(gids[0], gids[0], gids[0])
            os.setresuid(uid, uid, uid)
            try:
                with open(path, "rb") as f:
                    f.read(1)
                code = 0
            except OSError:
                code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 2:
        raise AssertionError("could not take on uid %d gids %s" % (uid, gids))
    return code == 0


def identity(pid):
    """(uid, [gid, supplementary gids...]) of a running process."""
    st = proc_status(pid)
    uid = int(st["Uid"].split()[0])
    gid = int(st["Gid"].split()[0])
    groups = [int(g) for g in st.get("Groups", "").split()]
    return uid, [gid] + [g for g in groups if g != gid]


def file_ids_under(root):
    """(st_dev, st_ino) of every regular file reachable under root without following symlinks."""
    ids = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            ids.add((st.st_dev, st.st_ino))
    return ids


@unittest.skipUnless(is_root(), "privilege separation is only real as root (run this test as root)")
class PrivilegesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("priv")
        cls.sessions = []
        try:
            cls.start_busy()
        except BaseException:
            cls.tearDownClass()         # unittest does not, when setUpClass fails
            raise

    @classmethod
    def start_busy(cls):
        i = cls.inst
        i.set_main_cf(auth_failure_delay="0")
        # every service of the default master.cf: enable the greylist line that ships commented out
        mcf = os.path.join(i.config_dir, "master.cf")
        with open(mcf) as f:
            text = f.read()
        with open(mcf, "w") as f:
            f.write(text.replace("#greylist  unix", "greylist  unix"))
        i.postctl("domain", "add", DOMAIN)
        for u in USERS:
            i.postctl("user", "add", "%s@%s" % (u, DOMAIN), "--password-stdin", input=u + "-pw\n")
        i.start()
        cls.ports = {name: i.port_base + p for name, p in
                     (("smtp", 25), ("submission", 587), ("submissions", 465),
                      ("imap", 143), ("imaps", 993))}
        for port in cls.ports.values():     # implicit-TLS ports say nothing first: connect only
            assert wait_until(lambda: cls.accepts(port), timeout=15), "port %d; log:\n%s" % (port, i.log())
        cls.busy_instance()
        # a daemon is root from exec until it drops privileges: wait until none of them is
        assert wait_until(cls.all_children_dropped, timeout=20), i.log()

    @staticmethod
    def accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False

    @classmethod
    def busy_instance(cls):
        """Sessions on every port, a delivered message, IMAP and SMTP logins: every daemon at work."""
        i, p = cls.inst, cls.ports
        s = smtplib.SMTP("127.0.0.1", p["smtp"], timeout=30)
        s.sendmail("someone@outside.test", ["alice@" + DOMAIN], b"Subject: privileges\r\n\r\nbody\r\n")
        cls.sessions.append(s)
        assert wait_until(lambda: glob.glob(i.path("mail", DOMAIN, "alice", "new", "*")), timeout=20), \
            "not delivered; log:\n" + i.log()
        sub = smtplib.SMTP("127.0.0.1", p["submission"], timeout=30)
        sub.starttls(context=tls_context())
        sub.login("bob@" + DOMAIN, "bob-pw")
        cls.sessions.append(sub)
        cls.sessions.append(smtplib.SMTP_SSL("127.0.0.1", p["submissions"], timeout=30,
                                             context=tls_context()))
        m = imaplib.IMAP4("127.0.0.1", p["imap"], timeout=30)
        m.login("alice@" + DOMAIN, "alice-pw")
        m.select("INBOX")
        cls.sessions.append(m)
        m2 = imaplib.IMAP4_SSL("127.0.0.1", p["imaps"], timeout=30, ssl_context=tls_context())
        m2.login("bob@" + DOMAIN, "bob-pw")
        m2.select("INBOX")
        cls.sessions.append(m2)

    @classmethod
    def all_children_dropped(cls):
        kids = children_of(cls.inst.master_pid())
        try:
            return kids and all("0" not in proc_status(k)["Uid"].split() for k in kids)
        except OSError:
            return False

    @classmethod
    def tearDownClass(cls):
        for s in cls.sessions:
            try:
                s.close() if not isinstance(s, imaplib.IMAP4) else s.logout()
            except (OSError, imaplib.IMAP4.error, smtplib.SMTPException):
                pass
        cls.inst.cleanup()

    def daemons(self):
        """{pid: program} for every process under master (children and their descendants)."""
        found, todo = {}, children_of(self.inst.master_pid())
        while todo:
            pid = todo.pop()
            try:
                found[pid] = os.path.basename(cmdline(pid)[0])
            except (OSError, IndexError):
                continue
            todo.extend(children_of(pid))
        return found

    # what DESIGN.md section 1 says: program -> (user, chroot)
    def expected(self):
        i = self.inst
        return {"smtpd": ("postern", i.path("queue")), "qmgr": ("postern", i.path("queue")),
                "smtp": ("postern", i.path("queue")), "virtual": ("vmail", i.path("mail")),
                "imapd": ("vmail", i.path("mail")), "authd": ("postern-auth", i.path("auth")),
                "policyd": ("postern", i.path("data"))}

    def test_processes(self):
        import pwd
        i = self.inst
        master = i.master_pid()
        st = proc_status(master)
        self.assertEqual(st["Uid"].split(), ["0"] * 4)
        daemons = self.daemons()
        expected = self.expected()
        programs = sorted(set(daemons.values()))
        self.assertEqual(programs, sorted(expected), "not every service of master.cf is running")
        checked = 0
        for pid, program in sorted(daemons.items()):
            user, root = expected[program]
            pw = pwd.getpwnam(user)
            st = proc_status(pid)
            what = "%s (pid %d)" % (program, pid)
            self.assertEqual(st["Uid"].split(), [str(pw.pw_uid)] * 4, what)
            self.assertEqual(st["Gid"].split(), [str(pw.pw_gid)] * 4, what)
            self.assertEqual(st["Groups"].split(), [str(pw.pw_gid)], what + ": supplementary groups")
            for cap in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"):
                self.assertEqual(int(st[cap], 16), 0, "%s %s=%s" % (what, cap, st[cap]))
            self.assertEqual(st["NoNewPrivs"], "1", what)
            self.assertEqual(os.readlink("/proc/%d/root" % pid), os.path.realpath(root),
                             what + " is not chrooted where DESIGN.md says")
            checked += 1
        print("\nprivileges: %d processes under master checked (%s), master uid 0, no other"
              % (checked, ", ".join("%s x%d" % (p, list(daemons.values()).count(p)) for p in programs)))

    def secret_files(self):
        """The password file and every message file of every mailbox."""
        i = self.inst
        passwd = i.path("auth", "passwd")
        self.assertTrue(os.path.isfile(passwd))
        mail = [f for f in glob.glob(i.path("mail", DOMAIN, "*", "*", "*")) if os.path.isfile(f)]
        mail += [f for f in glob.glob(i.path("mail", DOMAIN, "*", "*")) if os.path.isfile(f)]
        self.assertTrue(any("/new/" in f or "/cur/" in f for f in mail), mail)   # SELECT moves new/ to cur/
        return passwd, mail

    def test_file_access_by_identity(self):
        passwd, mail = self.secret_files()
        daemons = self.daemons()
        tried = 0
        seen_identities = {}
        for pid, program in daemons.items():
            seen_identities.setdefault(program, identity(pid))
        for program, (uid, gids) in sorted(seen_identities.items()):
            if program != "authd":
                self.assertFalse(can_open_as(uid, gids, passwd), "%s can read %s" % (program, passwd))
                tried += 1
            if program not in ("virtual", "imapd"):
                for f in mail:
                    self.assertFalse(can_open_as(uid, gids, f), "%s can read %s" % (program, f))
                    tried += 1
        # and the positive side, so the test would notice a check that cannot succeed
        self.assertTrue(can_open_as(*seen_identities["authd"], passwd))
        self.assertTrue(can_open_as(*seen_identities["imapd"], mail[0]))
        print("\nfile access: %d forbidden opens tried as the daemons' identities, all refused" % tried)

    def test_file_system_view(self):
        passwd, mail = self.secret_files()
        secret = {}
        for f in [passwd] + mail:
            st = os.stat(f)
            secret[(st.st_dev, st.st_ino)] = f
        views = 0
        for pid, program in sorted(self.daemons().items()):
            if program in ("virtual", "imapd"):
                visible_ok = {k for k, f in secret.items() if f != passwd}
            elif program == "authd":
                visible_ok = {k for k, f in secret.items() if f == passwd}
            else:
                visible_ok = set()
            leaked = (file_ids_under("/proc/%d/root/" % pid) & set(secret)) - visible_ok
            self.assertFalse(leaked, "%s (pid %d) sees %s in its chroot"
                             % (program, pid, [secret[k] for k in leaked]))
            views += 1
        print("\nchroot views: %d daemons' file systems walked; no password file or mailbox "
              "where it must not be" % views)

    def test_sessions_still_served(self):
        # the checks above ran against live sessions; they are still usable
        smtp, imap = self.sessions[0], self.sessions[3]
        self.assertEqual(smtp.noop()[0], 250)
        self.assertEqual(imap.noop()[0], "OK")


if __name__ == "__main__":
    main()
