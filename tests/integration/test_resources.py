"""Resource exhaustion: full file systems, connection limits, and clients that
send far too much. Each case ends in a clean 4xx/5xx, nothing half-written,
bounded memory in smtpd, and recovery once the cause is gone.

- queue file system full (a small tmpfs mounted over the queue directory, as
  root): MAIL and DATA get 452 4.3.1 (queue_minfree, Postfix's rule), no
  temporary queue file is left, and mail flows again when space returns;
- mailbox file system full (a tmpfs over the mail base): the message is
  deferred, never bounced, and delivered by `postctl queue flush` once
  space returns;
- connection limit: the client over smtpd_client_connection_count_limit gets
  421, and connects again once its other sessions end;
- descriptor limit: smtpd at its open-file limit (lowered with prlimit) stays
  up, leaves the connections it cannot accept waiting in the backlog, and
  serves them as soon as sessions end;
- a 1 GB message (refused at message_size_limit with 552, read and dropped,
  never buffered), 100,000 pipelined RCPTs (452 after smtpd_recipient_limit),
  a 10 MB header line: smtpd's peak RSS (VmHWM) stays bounded.
Figures are printed at the end.
"""
import glob
import json
import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time
import unittest

from postern_test import Instance, children_of, cmdline, is_root, main, proc_status, wait_until
from smtpd_helpers import Client

DOMAIN = "example.test"
FIGURES = {}


def smtpd_pid(inst):
    """The smtpd of the port-25 service."""
    for p in children_of(inst.master_pid()):
        try:
            args = cmdline(p)
        except OSError:
            continue
        if os.path.basename(args[0]) == "smtpd" and "-n" in args and \
                args[args.index("-n") + 1] == str(inst.smtp_port):
            return p
    return None


def rss_kb(pid, field="VmRSS"):
    return int(proc_status(pid)[field].split()[0])


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def maildir_count(inst, user):
    return len(glob.glob(inst.path("mail", DOMAIN, user, "new", "*")) +
               glob.glob(inst.path("mail", DOMAIN, user, "cur", "*")))


def mount_tmpfs_over(path, size):
    """Replace the directory path by a tmpfs of the given size holding the same tree."""
    st = os.stat(path)
    saved = path + ".saved"
    subprocess.run(["cp", "-a", path, saved], check=True)      # owners and modes kept
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=%o" % (size, st.st_mode & 0o7777),
                    "tmpfs", path], check=True)
    os.chown(path, st.st_uid, st.st_gid)
    subprocess.run(["cp", "-a", saved + "/.", path], check=True)
    shutil.rmtree(saved)


def fill(path, leave):
    """A filler file under path that leaves about `leave` bytes free; returns its path."""
    filler = os.path.join(path, "filler")
    vfs = os.statvfs(path)
    free = vfs.f_bavail * vfs.f_frsize
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        todo = max(0, free - leave)
        while todo > 0:
            n = min(todo, len(chunk))
            try:
                f.write(chunk[:n])
            except OSError:
                break
            todo -= n
    return filler


@unittest.skipUnless(is_root(), "mounting a small tmpfs needs root")
class FullFileSystemTest(unittest.TestCase):
    def setUp(self):
        self.inst = i = Instance("res-fs")
        i.set_main_cf(message_size_limit="1m")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        self.mounts = []

    def tearDown(self):
        self.inst.stop()
        for m in self.mounts:
            subprocess.run(["umount", "-l", m])
        self.inst.cleanup()

    def mount(self, sub, size):
        path = self.inst.path(sub)
        mount_tmpfs_over(path, size)
        self.mounts.append(path)
        return path

    def test_queue_full(self):
        i = self.inst
        queue = self.mount("queue", "8m")
        i.start()
        filler = fill(queue, 1 << 20)           # 1 MB left: below 1.5 * message_size_limit
        c = Client(i.smtp_port, source="127.0.0.1")
        c.cmd("EHLO client.test")
        code, text = c.cmd("MAIL FROM:<a@outside.test>")
        self.assertEqual(code, 452, text)
        self.assertIn("4.3.1", text)
        FIGURES["queue full: MAIL reply"] = text
        # space returns: MAIL works; then it goes again before DATA
        os.unlink(filler)
        self.assertEqual(c.cmd("MAIL FROM:<a@outside.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
        filler = fill(queue, 1 << 20)
        code, text = c.cmd("DATA")
        self.assertEqual(code, 452, text)
        self.assertIn("4.3.1", text)
        FIGURES["queue full: DATA reply"] = text
        # a declared SIZE larger than the space left is refused at once, too
        os.unlink(filler)
        filler = fill(queue, 5 << 19)         # 2.5 MB: room for SIZE=100, not for SIZE=1000000
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<a@outside.test> SIZE=100")[0], 250)
        c.cmd("RSET")
        code, text = c.cmd("MAIL FROM:<a@outside.test> SIZE=1000000")
        self.assertEqual(code, 452, text)
        # space that runs out in the middle of a message: 452 after its end, nothing kept
        os.unlink(filler)
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<a@outside.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        line = b"x" * 998 + b"\r\n"
        c.send(b"Subject: cut short\r\n\r\n" + line * 100)
        filler = fill(queue, 0)
        c.send(line * 700)
        code, text = c.cmd(".")
        self.assertEqual(code, 452, text)
        self.assertIn("4.3.1", text)
        FIGURES["queue full mid-message: reply after the end"] = text
        c.close()
        # nothing half-written
        self.assertEqual([f for f in os.listdir(os.path.join(queue, "incoming"))], [])
        self.assertEqual(os.listdir(os.path.join(queue, "corrupt")), [])
        os.unlink(filler)
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["alice@" + DOMAIN], b"Subject: after\r\n\r\nspace is back\r\n")
        self.assertTrue(wait_until(lambda: maildir_count(i, "alice") == 1, timeout=20), i.log()[-3000:])
        FIGURES["queue full: recovered, delivered after space returned"] = 1

    def test_mailbox_full_defers(self):
        i = self.inst
        mail = self.mount("mail", "4m")
        try:
            i.start()
        except AssertionError:
            raise AssertionError(i.log()[-4000:])
        filler = fill(mail, 16 << 10)
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("a@outside.test", ["alice@" + DOMAIN],
                       b"Subject: big\r\n\r\n" + b"x" * 200000 + b"\r\n")
        # deferred: still in the queue with a 4xx reason, no bounce queued
        def deferred():
            js = json.loads(i.postctl("queue", "list", "--json"))
            return js if js and any(r.get("state") == "deferred" or r.get("reason")
                                    for m in js for r in m["recipients"]) else None
        js = wait_until(deferred, timeout=30)
        self.assertTrue(js, "not deferred; log:\n" + i.log()[-3000:])
        self.assertEqual(len(js), 1, "a bounce was queued: %r" % js)
        self.assertEqual(maildir_count(i, "alice"), 0)
        self.assertNotIn("status=bounced", i.log())
        reason = [r.get("reason") for r in js[0]["recipients"]][0]
        FIGURES["mailbox full: deferred with"] = reason
        self.assertEqual(glob.glob(i.path("mail", DOMAIN, "alice", "tmp", "*")), [],
                         "a half-written message stayed in tmp/")
        os.unlink(filler)
        i.postctl("queue", "flush")
        self.assertTrue(wait_until(lambda: maildir_count(i, "alice") == 1, timeout=30), i.log()[-3000:])
        self.assertTrue(wait_until(lambda: json.loads(i.postctl("queue", "list", "--json")) == [],
                                   timeout=15))
        FIGURES["mailbox full: delivered after space returned"] = 1


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("res-lim")
        # 127.0.0.2 is a client like any other (by default all of mynetworks is exempt)
        i.set_main_cf(smtpd_client_connection_count_limit="5",
                      smtpd_client_event_limit_exceptions="127.0.0.1/32")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        try:
            i.start()
        except BaseException:
            i.cleanup()                 # unittest does not call tearDownClass then
            raise

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        print("\nresource figures:")
        for k in sorted(FIGURES):
            print("  %-58s %s" % (k, FIGURES[k]))

    def rss_bound_kb(self, pid):
        # generous: the point is "not proportional to what the client sent"
        return 600 * 1024 if sanitized(pid) else 120 * 1024

    def test_connection_count_limit(self):
        i = self.inst
        held = [Client(i.smtp_port, source="127.0.0.2") for _ in range(5)]
        for c in held:
            self.assertEqual(c.greeting[0], 220, c.greeting)
        over = Client(i.smtp_port, source="127.0.0.2", greet=False)
        code, text = over.read()
        self.assertEqual(code, 421, text)
        FIGURES["connection limit: the 6th connection got"] = text.splitlines()[0]
        over.sock.close()
        other = Client(i.smtp_port, source="127.0.0.3")     # other clients are not held up
        self.assertEqual(other.greeting[0], 220)
        other.close()
        for c in held:
            c.close()
        again = wait_until(lambda: self.greets("127.0.0.2"), timeout=10)
        self.assertTrue(again, "no recovery after the sessions ended")

    @unittest.skipUnless(is_root(), "lowering a daemon's open-file limit (prlimit) needs root")
    def test_z_file_descriptor_exhaustion(self):    # last: the hard limit stays lowered
        i = self.inst
        pid = smtpd_pid(i)
        in_use = len(os.listdir("/proc/%d/fd" % pid))
        limit = in_use + 8
        # as the daemon's own user: prlimit(2) needs that or CAP_SYS_RESOURCE, which a container lacks
        r = subprocess.run(["setpriv", "--reuid=postern", "--regid=postern", "--clear-groups",
                            "prlimit", "--pid", str(pid), "--nofile=%d:%d" % (limit, limit)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("prlimit on smtpd refused here: " + r.stderr.strip())
        try:
            # one address each: the per-client limit of this class must not be what refuses them
            conns = [socket.create_connection(("127.0.0.1", i.smtp_port), timeout=10,
                                              source_address=("127.0.1.%d" % (n + 1), 0)) for n in range(24)]
            greeted, waiting = [], []
            for c in conns:
                c.settimeout(3 if not greeted and not waiting else 0.5)
                try:
                    data = c.recv(512)
                except socket.timeout:
                    data = None
                (greeted if data and data.startswith(b"220") else waiting).append(c)
            self.assertTrue(greeted, "no session at all with %d descriptors" % limit)
            self.assertTrue(waiting, "the descriptor limit was not reached")
            # the process survived EMFILE; sessions ending make room for the waiting clients
            self.assertEqual(smtpd_pid(i), pid)
            for c in greeted:
                c.close()
            served, replies = 0, []
            for c in waiting[:len(greeted) - 1]:
                c.settimeout(10)
                try:
                    data = c.recv(512)
                except socket.timeout:
                    data = b"(timeout)"
                replies.append(data[:60])
                served += data.startswith(b"220")
                c.close()
            self.assertGreater(served, 0, "no waiting client served after descriptors were freed: %r; log:\n%s"
                               % (replies, i.log()[-2500:]))
            for c in waiting[len(greeted) - 1:]:
                c.close()
            FIGURES["fd limit %d: sessions, waiting, served after release" % limit] = \
                "%d, %d, %d" % (len(greeted), len(waiting), served)
        finally:
            # the soft limit back up to the (now lowered) hard limit is all we can do; enough for the rest
            subprocess.run(["setpriv", "--reuid=postern", "--regid=postern", "--clear-groups",
                            "prlimit", "--pid", str(pid), "--nofile=%d:%d" % (limit, limit)])
        self.assertTrue(wait_until(lambda: self.greets("127.0.0.4"), timeout=10))
        self.assertEqual(smtpd_pid(i), pid, "smtpd was restarted")

    def greets(self, source):
        c = Client(self.inst.smtp_port, source=source, greet=False)
        code, text = c.read()
        c.sock.close()
        return code == 220

    def test_gigabyte_message(self):
        i = self.inst
        pid = smtpd_pid(i)
        c = Client(i.smtp_port, source="127.0.0.1", timeout=120)
        c.cmd("EHLO client.test")
        self.assertEqual(c.cmd("MAIL FROM:<a@outside.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        line = b"x" * 998 + b"\r\n"
        block = b"Subject: huge\r\n\r\n" + line * 1023
        sent, started, closed_early = 0, time.time(), False
        try:
            while sent < (1 << 30):
                c.sock.sendall(block)
                sent += len(block)
            c.sock.sendall(b".\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed_early = True
        code, text = c.read()
        elapsed = time.time() - started
        self.assertTrue(code == 552 or (closed_early and code in (0, 552)), text)
        if code == 552:
            self.assertIn("5.3.4", text)
            self.assertEqual(c.cmd("NOOP")[0], 250)          # the session goes on
        c.sock.close()
        peak = rss_kb(pid, "VmHWM")
        self.assertLess(peak, self.rss_bound_kb(pid), "smtpd peak RSS %d kB" % peak)
        self.assertEqual(os.listdir(i.path("queue", "incoming")), [])
        FIGURES["1 GB message: reply"] = text.splitlines()[0] if text else "(closed)"
        FIGURES["1 GB message: MB sent, seconds"] = "%d MB in %.1f s" % (sent >> 20, elapsed)
        FIGURES["1 GB message: smtpd peak RSS (kB)"] = peak

    def test_hundred_thousand_recipients(self):
        i = self.inst
        pid = smtpd_pid(i)
        c = Client(i.smtp_port, source="127.0.0.1", timeout=120)
        c.cmd("EHLO client.test")
        self.assertEqual(c.cmd("MAIL FROM:<a@outside.test>")[0], 250)
        n = 100000
        codes = {}

        def reader():
            for _ in range(n):
                code, text = c.read()
                codes[code] = codes.get(code, 0) + 1
                if code == 0:
                    return
        t = threading.Thread(target=reader)
        t.start()
        batch = b"".join(b"RCPT TO:<alice@example.test>\r\n" for _ in range(1000))
        try:
            for _ in range(n // 1000):
                c.sock.sendall(batch)
        except (BrokenPipeError, ConnectionResetError):
            pass
        t.join(120)
        self.assertFalse(t.is_alive(), "replies stopped: %r" % codes)
        # duplicates of one address count too; the limit is smtpd_recipient_limit (1000)
        self.assertLessEqual(codes.get(250, 0), 1000, codes)
        self.assertGreater(codes.get(452, 0) + codes.get(0, 0), 0, codes)
        peak = rss_kb(pid, "VmHWM")
        self.assertLess(peak, self.rss_bound_kb(pid), "smtpd peak RSS %d kB" % peak)
        c.sock.close()
        FIGURES["100k RCPTs: replies by code"] = " ".join("%s:%d" % kv for kv in sorted(codes.items()))
        FIGURES["100k RCPTs: smtpd peak RSS (kB)"] = peak

    def test_ten_megabyte_header_line(self):
        i = self.inst
        pid = smtpd_pid(i)
        before = maildir_count(i, "alice")
        c = Client(i.smtp_port, source="127.0.0.1", timeout=120)
        c.cmd("EHLO client.test")
        self.assertEqual(c.cmd("MAIL FROM:<a@outside.test>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<alice@example.test>")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.sock.sendall(b"Subject: long\r\nX-Long: " + b"y" * (10 << 20) + b"\r\n\r\nbody\r\n.\r\n")
        code, text = c.read()
        self.assertEqual(code // 100, 5, text)           # refused, not stored in pieces
        self.assertEqual(c.cmd("NOOP")[0], 250)
        c.close()
        time.sleep(1)
        self.assertEqual(maildir_count(i, "alice"), before)
        peak = rss_kb(pid, "VmHWM")
        self.assertLess(peak, self.rss_bound_kb(pid), "smtpd peak RSS %d kB" % peak)
        FIGURES["10 MB header line: reply"] = text.splitlines()[0]
        FIGURES["10 MB header line: smtpd peak RSS (kB)"] = peak


if __name__ == "__main__":
    main()
