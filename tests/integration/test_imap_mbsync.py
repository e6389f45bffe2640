"""IMAP with a real synchronizing client: mbsync (isync) against imapd, both ways.

A user gets mail over SMTP and APPENDs with flags (INBOX and a folder Work);
mbsync (implicit TLS on 993, the instance's self-signed certificate pinned
with CertificateFile; Sync All, Create Both, Expunge Both, SyncState *) pulls
everything into a local Maildir: every message, byte for byte (line ends aside),
and every flag. Then both sides change: a flag set locally, a flag set and a
message expunged on the server (imaplib), a new local message, a local message
deleted; after a sync both sides hold the same messages with the same flags. A
final sync finds nothing to do (mbsync's counters, its exit status, and no
change on either side). A second test pulls over STARTTLS on 143.

mbsync 1.4 (Debian 12) writes SSLType (TLSType is 1.5's name).
"""
import email
import imaplib
import os
import re
import select
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"
USER = "erin@" + DOMAIN
PASSWORD = "erin-sync-pw"
MBSYNC = shutil.which("mbsync")
# a message's flags in a Maildir file name, as mbsync writes them
FLAG_OF = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def message(n, subject, sender="someone@outside.test"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <sync%d@outside.test>\r\n"
            "Date: Mon, 20 Nov 2023 10:%02d:00 +0000\r\n\r\nbody of message %d\r\nline two\r\n"
            % (sender, USER, subject, n, n, n)).encode()


def msgid_of(data):
    m = re.search(rb"^Message-ID:\s*(<[^>]+>)", data, re.M | re.I)
    return m.group(1).decode() if m else None


def lf(data):
    return data.replace(b"\r\n", b"\n")


def canon(data):
    """Contents to compare: LF line ends, without the X-TUID header mbsync adds to its copies."""
    return re.sub(rb"^X-TUID: [^\n]*\n", b"", lf(data), count=1, flags=re.M)


class Local:
    """The near side: mbsync's Maildir tree (Path local/, SubFolders Verbatim)."""

    def __init__(self, root):
        self.root = root

    def folder(self, name):
        return os.path.join(self.root, name)

    def messages(self, name):
        """{Message-ID: (path, set of IMAP flags)} of a local folder."""
        out = {}
        for sub in ("cur", "new"):
            d = os.path.join(self.folder(name), sub)
            if not os.path.isdir(d):
                continue
            for fn in os.listdir(d):
                path = os.path.join(d, fn)
                with open(path, "rb") as f:
                    mid = msgid_of(f.read())
                info = fn.rsplit(":2,", 1)[1] if ":2," in fn else ""
                out[mid] = (path, {FLAG_OF[c] for c in info if c in FLAG_OF})
        return out

    def set_flag(self, name, mid, letter):
        path, _ = self.messages(name)[mid]
        base = os.path.basename(path)
        stem, _, info = base.partition(":2,")
        info = "".join(sorted(set(info + letter)))
        os.rename(path, os.path.join(self.folder(name), "cur", "%s:2,%s" % (stem, info)))

    def add(self, name, data):
        fn = "%d.M%dP%d.localhost" % (time.time(), time.monotonic_ns() % 1000000, os.getpid())
        tmp = os.path.join(self.folder(name), "tmp", fn)
        with open(tmp, "wb") as f:
            f.write(lf(data))
        os.rename(tmp, os.path.join(self.folder(name), "new", fn))

    def snapshot(self):
        """Every file name under the tree (a sync that changes nothing leaves it alone)."""
        names = set()
        for dirpath, _, files in os.walk(self.root):
            for fn in files:
                if not fn.startswith(".mbsyncstate"):
                    names.add(os.path.relpath(os.path.join(dirpath, fn), self.root))
        return names


@unittest.skipIf(MBSYNC is None, "mbsync not installed (apt-get install isync): test skipped")
class MbsyncTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("mbsync")
        i = cls.inst
        i.set_main_cf(auth_failure_delay="0", auth_lockout_time="0")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
        i.start()
        cls.imap = i.port_base + 143
        cls.imaps = i.port_base + 993
        assert wait_until(lambda: i.port_open(cls.imap), timeout=10), i.log()
        cls.cert = i.path("etc", "tls", "cert.pem")
        assert os.path.exists(cls.cert), "no certificate at " + cls.cert
        cls.work = tempfile.mkdtemp(prefix="postern-mbsync-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)
        cls.inst.cleanup()

    # ---- helpers ----

    def connect(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ctx.check_hostname = False              # the certificate names mx.example.test
        m = imaplib.IMAP4_SSL("127.0.0.1", self.imaps, ssl_context=ctx, timeout=30)
        m.login(USER, PASSWORD)
        return m

    def server(self, folder):
        """{Message-ID: (uid, set of flags, body)} of a server folder, read with imaplib."""
        m = self.connect()
        try:
            typ, data = m.select('"%s"' % folder, readonly=True)
            self.assertEqual(typ, "OK", "SELECT %s: %s" % (folder, data))
            out = {}
            if int(data[0]) == 0:
                return out
            typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            self.assertEqual(typ, "OK", data)
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head = item[0].decode()
                uid = int(re.search(r"UID (\d+)", head).group(1))
                flags = set(re.search(r"FLAGS \(([^)]*)\)", head).group(1).split())
                flags.discard("\\Recent")
                out[msgid_of(item[1])] = (uid, flags, item[1])
            return out
        finally:
            m.logout()

    def write_config(self, name, port, ssl_type, patterns="*"):
        root = os.path.join(self.work, name)
        os.makedirs(os.path.join(root, "local"), exist_ok=True)
        conf = os.path.join(root, "mbsyncrc")
        cert = "CertificateFile %s\n" % self.cert if ssl_type != "None" else ""
        with open(conf, "w") as f:
            f.write("IMAPAccount postern\nHost 127.0.0.1\nPort %d\nUser %s\nPass %s\n"
                    "SSLType %s\n%s"
                    "\nIMAPStore remote\nAccount postern\n"
                    "\nMaildirStore local\nPath %s/local/\nInbox %s/local/INBOX\nSubFolders Verbatim\n"
                    "\nChannel sync\nFar :remote:\nNear :local:\nPatterns %s\n"
                    "Sync All\nCreate Both\nExpunge Both\nSyncState *\n"
                    % (port, USER, PASSWORD, ssl_type, cert, root, root, patterns))
        return conf, Local(os.path.join(root, "local"))

    def mbsync(self, conf, check=True):
        """Run mbsync -V on the channel with a terminal as output (only then does it print its
        counters); (exit status, output, counters {"far"/"near": (added, flags changed,
        trashed)}): what it did to each side."""
        master, slave = os.openpty()
        p = subprocess.Popen([MBSYNC, "-V", "-c", conf, "sync"], stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        deadline = time.time() + 120
        try:
            while time.time() < deadline:
                ready, _, _ = select.select([master], [], [], 1.0)
                if not ready:
                    if p.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:                 # EIO: mbsync has exited
                    break
                if not chunk:
                    break
                out += chunk
            rc = p.wait(timeout=max(1, deadline - time.time()))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
        out = out.decode("utf-8", "replace").replace("\r\n", "\n")
        if check:
            self.assertEqual(rc, 0, "mbsync failed:\n%s\nserver log:\n%s" % (out, self.inst.log()[-3000:]))
        counters = {}
        found = re.findall(r"F: \+(\d+)/(\d+) \*(\d+)/(\d+) #(\d+)/(\d+)\s+"
                           r"N: \+(\d+)/(\d+) \*(\d+)/(\d+) #(\d+)/(\d+)", out)
        if found:
            n = [int(x) for x in found[-1]]
            self.assertEqual(n[0::2], n[1::2], "mbsync did not finish everything:\n" + out)
            counters = {"far": tuple(n[0:6:2]), "near": tuple(n[6:12:2])}
        else:
            self.fail("no progress counters in mbsync's output:\n" + out)
        return rc, out, counters

    def assert_same(self, local, folder):
        """The folder holds the same messages with the same flags on both sides."""
        srv = self.server(folder)
        loc = local.messages(folder)
        self.assertEqual(sorted(srv), sorted(loc), "%s: server vs local Message-IDs" % folder)
        for mid, (_, flags, body) in srv.items():
            path, lflags = loc[mid]
            self.assertEqual(flags, lflags, "%s %s: server flags %s, local %s" % (folder, mid, flags, lflags))
            with open(path, "rb") as f:
                self.assertEqual(canon(f.read()), canon(body), "%s %s: contents differ" % (folder, mid))
        return srv, loc

    # ---- tests ----

    def test_two_way_sync(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            for n in (1, 2, 3):
                s.sendmail("someone@outside.test", [USER], message(n, "delivered %d" % n))
        inbox_new = self.inst.path("mail", DOMAIN, "erin", "new")
        self.assertTrue(wait_until(lambda: os.path.isdir(inbox_new) and len(os.listdir(inbox_new)) == 3,
                                   timeout=20), "3 SMTP deliveries not in %s; log:\n%s"
                        % (inbox_new, self.inst.log()[-3000:]))
        m = self.connect()
        typ, data = m.append("INBOX", "(\\Seen \\Flagged)", None, message(4, "appended seen+flagged"))
        self.assertEqual(typ, "OK", data)
        typ, data = m.create("Work")
        self.assertEqual(typ, "OK", data)
        typ, data = m.append("Work", "(\\Answered)", None, message(5, "appended answered"))
        self.assertEqual(typ, "OK", data)
        typ, data = m.append("Work", "(\\Draft)", None, message(6, "appended draft"))
        self.assertEqual(typ, "OK", data)
        m.logout()

        conf, local = self.write_config("imaps", self.imaps, "IMAPS", patterns="* !Pulled")
        rc, out, counters = self.mbsync(conf)
        inbox, _ = self.assert_same(local, "INBOX")
        self.assertEqual(len(inbox), 4, out)
        self.assertEqual(inbox["<sync4@outside.test>"][1], {"\\Seen", "\\Flagged"})
        self.assertEqual(inbox["<sync1@outside.test>"][1], set())
        work, _ = self.assert_same(local, "Work")
        self.assertEqual({k: v[1] for k, v in work.items()},
                         {"<sync5@outside.test>": {"\\Answered"}, "<sync6@outside.test>": {"\\Draft"}})
        for special in ("Drafts", "Sent", "Trash", "Junk"):     # imapd makes them for a new user
            self.assertTrue(os.path.isdir(local.folder(special)), "%s not created locally:\n%s"
                            % (special, out))
        self.assertEqual(counters, {"far": (0, 0, 0), "near": (6, 0, 0)}, out)

        # change both sides
        local.set_flag("INBOX", "<sync1@outside.test>", "S")
        local.add("INBOX", message(7, "written locally"))
        os.unlink(local.messages("Work")["<sync6@outside.test>"][0])     # deleted locally
        m = self.connect()
        m.select("INBOX")
        uid2 = inbox["<sync2@outside.test>"][0]
        uid3 = inbox["<sync3@outside.test>"][0]
        typ, data = m.uid("STORE", str(uid2), "+FLAGS.SILENT", "(\\Deleted)")
        self.assertEqual(typ, "OK", data)
        typ, data = m.expunge()
        self.assertEqual(typ, "OK", data)
        typ, data = m.uid("STORE", str(uid3), "+FLAGS", "(\\Flagged)")
        self.assertEqual(typ, "OK", data)
        m.logout()

        rc, out, counters = self.mbsync(conf)
        # far: the local message, \Seen, and \Deleted for the message deleted locally;
        # near: \Flagged, and \Deleted (then expunge) for the one expunged on the server
        self.assertEqual(counters, {"far": (1, 2, 0), "near": (0, 2, 0)}, out)
        inbox, loc = self.assert_same(local, "INBOX")
        self.assertEqual(sorted(inbox), ["<sync1@outside.test>", "<sync3@outside.test>",
                                         "<sync4@outside.test>", "<sync7@outside.test>"], out)
        self.assertEqual(inbox["<sync1@outside.test>"][1], {"\\Seen"}, "local flag not on the server")
        self.assertEqual(inbox["<sync3@outside.test>"][1], {"\\Flagged"}, "server flag not local")
        self.assertIn(",U=%d" % inbox["<sync7@outside.test>"][0], loc["<sync7@outside.test>"][0],
                      "the local message's file does not carry its new server UID")
        work, _ = self.assert_same(local, "Work")
        self.assertEqual(sorted(work), ["<sync5@outside.test>"], "local deletion not synced:\n" + out)

        # nothing left to do
        before_local = local.snapshot()
        before_server = {f: {k: v[:2] for k, v in self.server(f).items()} for f in ("INBOX", "Work")}
        rc, out, counters = self.mbsync(conf)
        self.assertEqual(rc, 0)
        self.assertEqual(counters, {"far": (0, 0, 0), "near": (0, 0, 0)},
                         "a sync without changes did something:\n" + out)
        self.assertEqual(local.snapshot(), before_local, "the local side changed")
        self.assertEqual({f: {k: v[:2] for k, v in self.server(f).items()} for f in ("INBOX", "Work")},
                         before_server, "the server side changed")

    def test_starttls_pull(self):
        m = self.connect()
        m.create("Pulled")
        typ, data = m.append("Pulled", "(\\Seen)", None, message(20, "over starttls"))
        self.assertEqual(typ, "OK", data)
        m.logout()
        conf, local = self.write_config("starttls", self.imap, "STARTTLS", patterns="Pulled")
        rc, out, _ = self.mbsync(conf)
        got = local.messages("Pulled")
        self.assertEqual(list(got), ["<sync20@outside.test>"], out)
        self.assertEqual(got["<sync20@outside.test>"][1], {"\\Seen"})


if __name__ == "__main__":
    main()
