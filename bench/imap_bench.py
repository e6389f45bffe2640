#!/usr/bin/env python3
"""imap_bench - IMAP on a 10,000-message Maildir: Postern's imapd against Dovecot, in one run.

Both servers get the same mailbox, written straight into the Maildir (folder
bench10k of user9@example.test, N x 4 KiB messages in cur/ with ",S=,W=:2,"
names, owned by vmail), so the first SELECT is cold: neither server has an
index for those files yet. The same functions then time, against each server:

  LOGIN+SELECT cold (first after the files appear) and warm (median of 7)
  UID FETCH 1:* (FLAGS ENVELOPE), first and repeated
  UID FETCH 1:* (BODY.PEEK[]) - every body
  UID SEARCH SUBJECT / HEADER Message-ID (and a BODY search that misses)
  memory per idle logged-in connection: RSS and PSS of all the server's
      processes before and with --conns connections (LOGIN only)
  concurrent IDLE connections: --idle-conns logged-in connections SELECT
      INBOX and IDLE; then every one must still answer DONE with OK

Timed commands go over a raw socket (literals skipped, not parsed), so the
numbers are the server's, not imaplib's. The many connections are driven by one
selectors loop, with a bounded number of logins in flight.

Postern is a fresh instance in /tmp/bench-imap-postern (postctl init, port base
22000: imap on 22143). Dovecot is the peer of ../shared/peers/dovecot (setup.sh /
teardown.sh), in its own base /tmp/bench-imap-dovecot on 12143, so it does not
disturb another user of the peer. Dovecot runs one process per connection and
the peer's configuration caps them at 1000 (default_process_limit), so its IDLE
test tries --peer-idle-conns (1000).

Both servers start with a soft RLIMIT_NOFILE of --server-nofile (default 1024,
what systemd gives a service; the hard limit stays): 10,000 connections need the
daemon to raise its own soft limit. The bench process raises its own limit.

  sudo bench/imap_bench.py [--msgs 10000] [--conns 1000] [--idle-conns 10000]
                           [--peer-idle-conns 1000] [--server-nofile 1024|hard]
                           [--no-peer] [--json FILE]
"""
import argparse
import errno
import json
import os
import pwd
import random
import re
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time

from bench_common import DOVECOT_PEER, DovecotPeer, Postern

HOST = "127.0.0.1"
POSTERN_DIR = "/tmp/bench-imap-postern"
POSTERN_PORT_BASE = 22000
PEER_BASE = "/tmp/bench-imap-dovecot"
PEER_IMAP_PORT, PEER_IMAPS_PORT = 12143, 12993
DOMAIN = "example.test"
USER, PASS, BOX = "user9@example.test", "secret", "bench10k"
NUSERS = 10
MSG_SIZE = 4096
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()


# ---- the mailbox (the peer's generator: same messages for both servers) ----

def msg_bytes(i, rnd):
    t = time.gmtime(1700000000 + i * 60)
    hdr = (f"From: Sender {i % 97} <sender{i % 97}@example.org>\n"
           f"To: {USER}\n"
           f"Subject: bench {i} needle-{i % 100:03d}- {' '.join(rnd.choice(WORDS) for _ in range(3))}\n"
           f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', t)}\n"
           f"Message-ID: <bench{i}@example.org>\n"
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
    body = []
    size = len(hdr)
    while size < MSG_SIZE - 80:
        line = " ".join(rnd.choice(WORDS) for _ in range(11))
        body.append(line)
        size += len(line) + 1
    text = hdr + "\n".join(body) + "\n"
    text += "x" * (MSG_SIZE - len(text) - 1) + "\n"
    return text.encode()


def populate(folder_dir, nmsg):
    """Write nmsg messages into folder_dir/cur; return (seconds, total bytes with CRLF)."""
    vm = pwd.getpwnam("vmail")
    rnd = random.Random(7)
    now = int(time.time())
    total = 0
    t0 = time.perf_counter()
    for i in range(1, nmsg + 1):
        data = msg_bytes(i, rnd)
        vsize = len(data) + data.count(b"\n")
        total += vsize
        path = f"{folder_dir}/cur/{now}.M{i}P{os.getpid()}.bench,S={len(data)},W={vsize}:2,"
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, vm.pw_uid, vm.pw_gid)
    return time.perf_counter() - t0, total


# ---- a raw IMAP client for the timed commands ----

LITERAL = re.compile(rb"\{(\d+)\+?\}$")


class Raw:
    """One blocking connection; responses are scanned, literals skipped and counted."""

    def __init__(self, port, timeout=300):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = bytearray()
        self.pos = 0
        self.ntag = 0
        self.greeting = self.line()[0]

    def fill(self):
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def line(self):
        """One response line with its literals: (text without literals, literal bytes)."""
        parts, lit = [], 0
        while True:
            idx = self.buf.find(b"\r\n", self.pos)
            while idx < 0:
                self.fill()
                idx = self.buf.find(b"\r\n", self.pos)
            seg = bytes(self.buf[self.pos:idx])
            self.pos = idx + 2
            m = LITERAL.search(seg)
            if not m:
                parts.append(seg)
                return b"".join(parts), lit
            n = int(m.group(1))
            while len(self.buf) - self.pos < n:
                self.fill()
            self.pos += n
            lit += n
            parts.append(seg[:m.start()])

    def command(self, text, keep=False):
        """Send a command; return (tagged line, untagged count, literal bytes, kept lines)."""
        self.ntag += 1
        tag = b"B%d" % self.ntag
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        n = lit = 0
        kept = []
        while True:
            text_, nlit = self.line()
            lit += nlit
            if text_.startswith(tag + b" "):
                return text_.decode("utf-8", "replace"), n, lit, kept
            if text_.startswith(b"* "):
                n += 1
                if keep:
                    kept.append(text_)

    def ok(self, text, keep=False):
        r = self.command(text, keep)
        if " OK" not in r[0][:12]:
            raise RuntimeError("%s -> %s" % (text, r[0]))
        return r

    def close(self):
        try:
            self.sock.sendall(b"Z LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


def login(port, user=USER):
    c = Raw(port)
    c.ok('LOGIN "%s" "%s"' % (user, PASS))
    return c


def timed(fn):
    t0 = time.perf_counter()
    r = fn()
    return time.perf_counter() - t0, r


def login_select(port, nmsg):
    """(connect+greeting, LOGIN, SELECT) seconds, and the connection."""
    t0 = time.perf_counter()
    c = Raw(port)
    t1 = time.perf_counter()
    c.ok('LOGIN "%s" "%s"' % (USER, PASS))
    t2 = time.perf_counter()
    tagged, _, _, lines = c.ok("SELECT " + BOX, keep=True)
    t3 = time.perf_counter()
    exists = [int(x.split()[1]) for x in lines if x.endswith(b" EXISTS")]
    if exists != [nmsg]:
        raise RuntimeError("SELECT %s: EXISTS %s, expected %d" % (BOX, exists, nmsg))
    return (t1 - t0, t2 - t1, t3 - t2), c


def search_hits(lines):
    for x in lines:
        if x.startswith(b"* SEARCH"):
            return len(x.split()) - 2
    return -1


def timing_tests(port, nmsg, total_bytes, res):
    parts, c = login_select(port, nmsg)
    res["login_select_cold_s"] = sum(parts)
    res["login_select_cold_parts"] = parts
    c.close()
    warm = []
    for _ in range(7):
        parts, c = login_select(port, nmsg)
        warm.append(parts)
        c.close()
    res["login_select_warm_s"] = statistics.median(sum(p) for p in warm)
    res["login_select_warm_parts"] = [statistics.median(p[k] for p in warm) for k in range(3)]

    _, c = login_select(port, nmsg)
    for rnd in ("first", "repeat"):
        t, (_, n, _, _) = timed(lambda: c.ok("UID FETCH 1:* (FLAGS ENVELOPE)"))
        if n != nmsg:
            raise RuntimeError("UID FETCH (FLAGS ENVELOPE): %d responses, expected %d" % (n, nmsg))
        res["fetch_envelope_%s_s" % rnd] = t
    t, (_, n, nbytes, _) = timed(lambda: c.ok("UID FETCH 1:* (BODY.PEEK[])"))
    if n != nmsg or nbytes != total_bytes:
        raise RuntimeError("UID FETCH BODY.PEEK[]: %d messages, %d bytes; expected %d, %d"
                           % (n, nbytes, nmsg, total_bytes))
    res["fetch_bodies_s"] = t
    res["fetch_bodies_MBps"] = nbytes / t / 1e6
    expect_subject = sum(1 for i in range(1, nmsg + 1) if i % 100 == 42)
    for rnd in ("first", "repeat"):
        t, (_, _, _, lines) = timed(lambda: c.ok('UID SEARCH SUBJECT "needle-042-"', keep=True))
        if search_hits(lines) != expect_subject:
            raise RuntimeError("SEARCH SUBJECT: %d hits, expected %d" % (search_hits(lines), expect_subject))
        res["search_subject_%s_s" % rnd] = t
    t, (_, _, _, lines) = timed(lambda: c.ok('UID SEARCH HEADER Message-ID "<bench4242@"', keep=True))
    if search_hits(lines) != (1 if nmsg >= 4242 else 0):
        raise RuntimeError("SEARCH HEADER Message-ID: %d hits" % search_hits(lines))
    res["search_msgid_s"] = t
    t, (_, _, _, lines) = timed(lambda: c.ok('UID SEARCH BODY "nonexistentword"', keep=True))
    if search_hits(lines) != 0:
        raise RuntimeError("SEARCH BODY: %d hits, expected 0" % search_hits(lines))
    res["search_body_miss_s"] = t
    c.close()


# ---- many connections at once ----

class Slot:
    __slots__ = ("sock", "buf", "state", "user")

    def __init__(self, sock, user):
        self.sock, self.buf, self.state, self.user = sock, bytearray(), "greet", user


class Many:
    """N logged-in connections driven by one selectors loop."""

    def __init__(self, port):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.ready = []         # slots logged in (and selected, if asked)
        self.errors = {}        # reason -> count

    def fail(self, slot, reason):
        self.errors[reason] = self.errors.get(reason, 0) + 1
        if slot is not None:
            try:
                self.sel.unregister(slot.sock)
            except (KeyError, ValueError):
                pass
            slot.sock.close()

    @staticmethod
    def send(slot, data):
        # a few bytes into an empty socket buffer: a short write does not happen here
        slot.sock.send(data)

    def lines(self, slot):
        """Complete lines received on slot (None on EOF)."""
        try:
            chunk = slot.sock.recv(65536)
        except BlockingIOError:
            return []
        except OSError as e:
            return None if e.errno != errno.EAGAIN else []
        if not chunk:
            return None
        slot.buf += chunk
        out = []
        while True:
            i = slot.buf.find(b"\r\n")
            if i < 0:
                return out
            out.append(bytes(slot.buf[:i]))
            del slot.buf[:i + 2]

    def step(self, slot, line, select):
        """Advance slot's state on one line; True when it finished (ready or failed)."""
        st = slot.state
        if st == "greet":
            if not line.startswith(b"* OK"):
                self.fail(slot, "greeting " + line[:60].decode("utf-8", "replace"))
                return True
            slot.state = "login"
            self.send(slot, b'L LOGIN "%s" "%s"\r\n' % (slot.user.encode(), PASS.encode()))
        elif st == "login" and line.startswith(b"L "):
            if not line.startswith(b"L OK"):
                self.fail(slot, "LOGIN " + line[:80].decode("utf-8", "replace"))
                return True
            if not select:
                slot.state = "ready"
                return True
            slot.state = "select"
            self.send(slot, b"S SELECT INBOX\r\n")
        elif st == "select" and line.startswith(b"S "):
            if not line.startswith(b"S OK"):
                self.fail(slot, "SELECT " + line[:80].decode("utf-8", "replace"))
                return True
            slot.state = "ready"
            return True
        return False

    def open(self, n, select=False, window=64, stall=20.0):
        """Open n logged-in connections (users user0..9), at most window logins in flight.
        Gives up when no connection got ready for stall seconds (the server is full)."""
        started = inflight = 0
        last = time.monotonic()
        while len(self.ready) + sum(self.errors.values()) < n:
            while inflight < window and started < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((HOST, self.port))
                started += 1
                if err not in (0, errno.EINPROGRESS):
                    s.close()
                    self.fail(None, "connect: " + os.strerror(err))
                    continue
                self.sel.register(s, selectors.EVENT_READ, Slot(s, "user%d@%s" % (started % NUSERS, DOMAIN)))
                inflight += 1
            if time.monotonic() - last > stall:
                # the server stopped letting connections in: count the rest as failed
                for key in list(self.sel.get_map().values()):
                    if key.data.state != "ready":
                        self.fail(key.data, "not ready after %.0fs without progress (state %s)"
                                  % (stall, key.data.state))
                if n > started:
                    self.errors["not tried (server full)"] = n - started
                break
            for key, _ in self.sel.select(timeout=1.0):
                slot = key.data
                got = self.lines(slot)
                if got is None:
                    self.fail(slot, "closed by server in state " + slot.state)
                    inflight -= 1
                    continue
                for line in got:
                    if self.step(slot, line, select):
                        inflight -= 1
                        if slot.state == "ready":
                            self.ready.append(slot)
                            last = time.monotonic()
                        break
        return len(self.ready)

    def roundtrip(self, payload, want_prefix, reply_tag=None, stall=60.0):
        """Send payload on every ready slot; count the slots whose answer starts with want_prefix
        (for a tag, untagged lines before it are skipped). The others are dropped."""
        waiting = {}
        for slot in self.ready:
            try:
                self.send(slot, payload)
                waiting[slot.sock] = slot
            except OSError as e:
                self.fail(slot, "send: " + os.strerror(e.errno))
        ok = []
        last = time.monotonic()
        while waiting:
            events = self.sel.select(timeout=1.0)
            if events:
                last = time.monotonic()
            elif time.monotonic() - last > stall:
                for slot in waiting.values():
                    self.fail(slot, "no answer to %r in %.0fs" % (payload.strip(), stall))
                break
            for key, _ in events:
                slot = key.data
                if slot.sock not in waiting:
                    continue
                got = self.lines(slot)
                if got is None:
                    del waiting[slot.sock]
                    self.fail(slot, "closed by server after %r" % payload.strip())
                    continue
                for line in got:
                    if reply_tag and line.startswith(b"* "):
                        continue
                    del waiting[slot.sock]
                    if line.startswith(want_prefix):
                        ok.append(slot)
                    else:
                        self.fail(slot, "%r -> %s" % (payload.strip(), line[:80].decode("utf-8", "replace")))
                    break
        self.ready = ok
        return len(ok)

    def close(self):
        for key in list(self.sel.get_map().values()):
            key.data.sock.close()
        self.sel.close()
        self.ready = []


# ---- processes and memory ----

def descendants(root):
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def mem_of(pids):
    """(RSS KiB, PSS KiB, {comm: processes}) summed over pids."""
    rss = pss = 0
    names = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            with open(f"/proc/{p}/comm") as f:
                n = f.read().strip()
            names[n] = names.get(n, 0) + 1
        except OSError:
            pass
    return rss, pss, names


def fds_of(pids):
    n = 0
    for p in pids:
        try:
            n += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return n


def nofile_of(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return soft, hard
    except OSError:
        pass
    return None


def connection_tests(server, a, res):
    port = server.port
    time.sleep(1)
    rss0, pss0, _ = mem_of(descendants(server.master_pid()))
    fds0 = fds_of(descendants(server.master_pid()))
    many = Many(port)
    t0 = time.perf_counter()
    n = many.open(a.conns)
    res["idle_login_rate_per_s"] = n / (time.perf_counter() - t0)
    time.sleep(2)
    rss1, pss1, names = mem_of(descendants(server.master_pid()))
    fds1 = fds_of(descendants(server.master_pid()))
    alive = many.roundtrip(b"N NOOP\r\n", b"N OK", reply_tag=True)
    many.close()
    res.update(conns=a.conns, conns_ok=n, conns_alive=alive, conn_errors=many.errors,
               rss_kib_before=rss0, pss_kib_before=pss0, rss_kib_with_conns=rss1, pss_kib_with_conns=pss1,
               rss_kib_per_conn=(rss1 - rss0) / max(n, 1), pss_kib_per_conn=(pss1 - pss0) / max(n, 1),
               processes_with_conns=names, fds_per_conn=(fds1 - fds0) / max(n, 1))
    print("  %d/%d idle connections logged in (%d answer NOOP); RSS %d -> %d KiB, PSS %d -> %d KiB;"
          " %.1f fds each%s" % (n, a.conns, alive, rss0, rss1, pss0, pss1, (fds1 - fds0) / max(n, 1),
             "; errors: %s" % many.errors if many.errors else ""), flush=True)

    target = server.idle_target(a)
    time.sleep(2)
    many = Many(port)
    t0 = time.perf_counter()
    n = many.open(target, select=True)
    opened_s = time.perf_counter() - t0
    idling = many.roundtrip(b"I IDLE\r\n", b"+")
    time.sleep(3)
    rss2, pss2, names = mem_of(descendants(server.master_pid()))
    fds2 = fds_of(descendants(server.master_pid()))
    limits = {str(p): nofile_of(p) for p in server.imap_pids()}
    answered = many.roundtrip(b"DONE\r\n", b"I OK", reply_tag=True)
    many.close()
    res.update(idle_target=target, idle_logged_in=n, idle_idling=idling, idle_answered=answered,
               idle_open_s=opened_s, idle_errors=many.errors, rss_kib_with_idle=rss2,
               pss_kib_with_idle=pss2, processes_with_idle=names, server_nofile=limits,
               fds_per_idle_conn=(fds2 - fds0) / max(idling, 1))
    print("  IDLE: %d/%d logged in and selected in %.1fs, %d idling, %d answered DONE with OK;"
          " PSS with them %d KiB; %.1f fds each%s" % (n, target, opened_s, idling, answered, pss2,
                                                      (fds2 - fds0) / max(idling, 1),
                                       "; errors: %s" % many.errors if many.errors else ""), flush=True)
    print("  RLIMIT_NOFILE (soft, hard) of the IMAP processes: %s" % limits, flush=True)


# ---- the two servers ----

def server_limits(soft):
    """preexec_fn: the soft RLIMIT_NOFILE a service manager would give the daemons."""
    def apply():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == "hard":
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        else:       # above the hard limit: raise both (root may, up to fs.nr_open)
            resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), max(int(soft), hard)))
    return apply


def wait_port(port, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(512).startswith(b"* OK"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class PosternIMAP(Postern):
    """Postern with imapd in master.cf (maxproc procs), users user0..9, no login throttling."""

    def __init__(self, nofile, procs=None):
        # no brute-force delay or lockout: thousands of logins from one address are the test
        super().__init__(POSTERN_DIR, POSTERN_PORT_BASE,
                         [("user%d@%s" % (i, DOMAIN), PASS) for i in range(NUSERS)], domain=DOMAIN,
                         extra_main_cf="auth_failure_delay = 0\nauth_lockout_time = 0\n",
                         interface=HOST)
        self.procs = procs
        self.port = POSTERN_PORT_BASE + 143
        self.nofile = nofile
        self.folder = f"{POSTERN_DIR}/mail/{DOMAIN}/user9/.{BOX}"

    def setup(self):
        self.create()
        self.configure_imapd()
        self.start(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=server_limits(self.nofile))
        if not wait_port(self.port):
            raise RuntimeError("Postern imapd does not answer on %d; log:\n%s"
                               % (self.port, self.log_tail()))

    def configure_imapd(self):
        mcf = self.path("etc", "master.cf")
        with open(mcf) as f:
            have_imapd = re.search(r"^\S+\s+inet\s.*\simapd\b", f.read(), re.M)
        if not have_imapd:
            with open(mcf, "a") as f:
                f.write("%d inet n - y - - imapd\n" % self.port)
        if self.procs:
            with open(mcf) as f:
                lines = f.read().splitlines()
            for k, line in enumerate(lines):
                fields = line.split()
                if len(fields) >= 8 and not line[0].isspace() and fields[7] == "imapd":
                    fields[6] = str(self.procs)
                    lines[k] = " ".join(fields)
            with open(mcf, "w") as f:
                f.write("\n".join(lines) + "\n")

    def log_tail(self):
        try:
            with open(POSTERN_DIR + "/log/postern.log", errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def make_folder(self):
        c = login(self.port)
        c.ok("CREATE " + BOX)
        c.close()
        return self.folder

    def master_pid(self):
        with open(POSTERN_DIR + "/queue/pid/master.pid") as f:
            return int(f.read())

    def imap_pids(self):
        out = []
        for p in descendants(self.master_pid()):
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == "imapd":
                        out.append(p)
            except OSError:
                pass
        return out

    def idle_target(self, a):
        return a.idle_conns


class DovecotIMAP(DovecotPeer):
    """The peer Dovecot in its own base and ports, started with the servers' RLIMIT_NOFILE."""

    def __init__(self, nofile):
        super().__init__(PEER_BASE, PEER_IMAP_PORT, PEER_IMAPS_PORT, preexec_fn=server_limits(nofile))
        self.folder = f"{PEER_BASE}/vmail/{DOMAIN}/user9/Maildir/.{BOX}"

    def setup(self):
        super().setup()
        if not wait_port(self.port):
            raise RuntimeError("peer Dovecot does not answer on %d" % self.port)

    def make_folder(self):
        c = login(self.port)
        c.command("DELETE " + BOX)
        c.ok("CREATE " + BOX)
        c.close()
        return self.folder

    def imap_pids(self):
        pids = []
        for p in descendants(self.master_pid()):
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() in ("imap", "imap-login"):
                        pids.append(p)
            except OSError:
                pass
        return pids[:3]         # one process per connection: a sample is enough

    def idle_target(self, a):
        return min(a.idle_conns, a.peer_idle_conns)


# ---- report ----

ROWS = [
    # key, label, unit, kind: "time" (lower is better), "mem" (at most a tenth)
    ("login_select_cold_s", "LOGIN+SELECT cold", "ms", "time"),
    ("login_select_warm_s", "LOGIN+SELECT warm (median of 7)", "ms", "time"),
    ("fetch_envelope_first_s", "UID FETCH 1:* (FLAGS ENVELOPE) first", "ms", "time"),
    ("fetch_envelope_repeat_s", "UID FETCH 1:* (FLAGS ENVELOPE) repeat", "ms", "time"),
    ("fetch_bodies_s", "UID FETCH 1:* (BODY.PEEK[])", "ms", "time"),
    ("search_subject_first_s", "UID SEARCH SUBJECT first", "ms", "time"),
    ("search_subject_repeat_s", "UID SEARCH SUBJECT repeat", "ms", "time"),
    ("search_msgid_s", "UID SEARCH HEADER Message-ID", "ms", "time"),
    ("search_body_miss_s", "UID SEARCH BODY (no hit; no target)", "ms", "info"),
    ("rss_kib_per_conn", "RSS per idle logged-in connection", "KiB", "mem"),
    ("pss_kib_per_conn", "PSS per idle logged-in connection", "KiB", "mem"),
]


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "ms":
        return "%.1f" % (v * 1000)
    return "%.1f" % v


def report(results, a):
    p = results.get("Postern", {})
    d = results.get("Dovecot", {})
    print("\n%d messages of %d bytes; %d idle connections for memory; ratio = Postern / Dovecot"
          % (a.msgs, MSG_SIZE, a.conns))
    print("\n| operation | unit | Postern | Dovecot | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for key, label, unit, kind in ROWS:
        pv, dv = p.get(key), d.get(key)
        ratio = pv / dv if pv is not None and dv else None
        if kind == "time":
            target = "<= 1"
            met = "-" if ratio is None else ("yes" if ratio <= 1.0 else "NO")
        elif kind == "mem":
            target = "<= 0.10"
            met = "-" if ratio is None else ("yes" if ratio <= 0.10 else "NO")
        else:
            target, met = "-", "-"
        print("| %s | %s | %s | %s | %s | %s | %s |" % (label, unit, fmt(pv, unit), fmt(dv, unit),
                                                       "-" if ratio is None else "%.2f" % ratio, target, met))

    def idle(r):
        if "idle_target" not in r:
            return "-"
        return "%d of %d" % (r["idle_answered"], r["idle_target"])
    met = "-"
    if "idle_answered" in p:
        met = "yes" if p["idle_answered"] >= 10000 else "NO"
    print("| concurrent IDLE connections (answered DONE) | conns | %s | %s | - | 10000 | %s |"
          % (idle(p), idle(d) + (" (peer cap)" if d.get("idle_target", 0) < a.idle_conns else "")
             if d else "-", met))
    for name, r in results.items():
        if "fds_per_conn" in r:
            print("\n%s: file descriptors (all server processes) per logged-in connection %.1f,"
                  " per IDLE connection (INBOX selected) %s" % (
                      name, r["fds_per_conn"],
                      "%.1f" % r["fds_per_idle_conn"] if r.get("idle_idling") else "-"))
        if "pss_kib_with_idle" in r and r.get("idle_answered"):
            print("\n%s: PSS %d KiB with %d IDLE connections (%.1f KiB each over the idle baseline);"
                  " processes %s" % (name, r["pss_kib_with_idle"], r["idle_answered"],
                                     (r["pss_kib_with_idle"] - r["pss_kib_before"]) / r["idle_answered"],
                                     r["processes_with_idle"]))
    print("\nLimits that matter: the IMAP server's RLIMIT_NOFILE (fds per connection above; started"
          " here with soft=%s), fs.nr_open=%s, fs.file-max=%s, net.core.somaxconn=%s,"
          " ip_local_port_range=%s (client ports from one address), fs.inotify.max_user_watches=%s"
          % (a.server_nofile, sysctl("fs/nr_open"), sysctl("fs/file-max"), sysctl("net/core/somaxconn"),
             sysctl("net/ipv4/ip_local_port_range").replace("\t", "-"),
             sysctl("fs/inotify/max_user_watches")))


def sysctl(name):
    try:
        with open("/proc/sys/" + name) as f:
            return f.read().strip()
    except OSError:
        return "?"


def stage(system, res, name, fn):
    """Run one group of measurements; a failure is reported and the next group still runs."""
    try:
        fn()
    except Exception as e:
        res.setdefault("errors", {})[name] = "%s: %s" % (type(e).__name__, e)
        print("  FAILED (%s): %s: %s" % (name, type(e).__name__, e), flush=True)
        if isinstance(system, PosternIMAP):
            print(system.log_tail(), flush=True)


def timings(system, a, res):
    folder = system.make_folder()
    res["populate_s"], total = populate(folder, a.msgs)
    os.sync()
    timing_tests(system.port, a.msgs, total, res)
    ms = {k: v * 1000 for k, v in res.items() if k.endswith("_s")}
    print("  LOGIN+SELECT cold %.0f ms, warm %.1f ms; FETCH ENVELOPE %.0f/%.0f ms; bodies %.0f ms"
          " (%.0f MB/s); SEARCH SUBJECT %.0f/%.0f ms, Message-ID %.0f ms, BODY %.0f ms"
          % (ms["login_select_cold_s"], ms["login_select_warm_s"], ms["fetch_envelope_first_s"],
             ms["fetch_envelope_repeat_s"], ms["fetch_bodies_s"], res["fetch_bodies_MBps"],
             ms["search_subject_first_s"], ms["search_subject_repeat_s"], ms["search_msgid_s"],
             ms["search_body_miss_s"]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msgs", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=1000, help="idle connections for the memory test")
    ap.add_argument("--idle-conns", type=int, default=10000, help="concurrent IDLE connections to try")
    ap.add_argument("--peer-idle-conns", type=int, default=1000,
                    help="at most this many for Dovecot (a process each; its config allows 1000)")
    ap.add_argument("--server-nofile", default="1024",
                    help="soft RLIMIT_NOFILE the servers start with: a number (above the hard limit: "
                         "both) or 'hard'")
    ap.add_argument("--imapd-procs", type=int,
                    help="maxproc of Postern's imapd services (default: master.cf's, one process)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("imap_bench: run as root (instances with chroot and the vmail user)")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(a.conns, a.idle_conns) + 100
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < need:
        print("imap_bench: warning: RLIMIT_NOFILE hard limit %d < %d: fewer connections possible"
              % (hard, need), file=sys.stderr)
    if a.server_nofile != "hard" and int(a.server_nofile) > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (int(a.server_nofile), int(a.server_nofile)))
            hard = int(a.server_nofile)
        except (ValueError, OSError) as e:
            print("imap_bench: cannot raise the hard RLIMIT_NOFILE to %s (%s; no CAP_SYS_RESOURCE?):"
                  " the servers get %d" % (a.server_nofile, e, hard), file=sys.stderr)
            a.server_nofile = str(hard)
    systems = [PosternIMAP(a.server_nofile, a.imapd_procs)]
    if not a.no_peer:
        if DovecotPeer.available():
            systems.append(DovecotIMAP(a.server_nofile))
        else:
            print("imap_bench: no dovecot or no %s/setup.sh: Postern only" % DOVECOT_PEER,
                  file=sys.stderr)
    results = {}
    for system in systems:
        print("%s:" % system.name, flush=True)
        res = results[system.name] = {}
        try:
            system.setup()
        except Exception as e:
            res["error"] = "setup: %s" % e
            print("  FAILED: %s" % res["error"], flush=True)
            system.teardown()
            continue
        try:
            # connections first, on the fresh server: heap the big FETCHes leave behind
            # would otherwise hide what connections cost
            stage(system, res, "connections", lambda: connection_tests(system, a, res))
            stage(system, res, "timings", lambda: timings(system, a, res))
        finally:
            system.teardown()
    report(results, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
