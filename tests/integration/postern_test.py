"""postern_test - what the integration tests share: a real instance in a temp dir.

An Instance is created with the real `postctl init --dir`, started and stopped
with the real `postctl`, and talked to with real clients. Ports come from a
free --port-base, so tests can run in parallel. POSTERN_BIN names the build's
bin directory (set by ctest).
"""
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("POSTERN_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
BIN = os.path.abspath(BIN)


def is_root():
    return os.geteuid() == 0


def port_free(port):
    # 127.0.0.2 too: the two-instance tests (backup MX, shared database) put one there
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2")):
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port_base():
    """A base N such that the standard ports + N are all free on loopback."""
    for _ in range(200):
        base = random.randrange(20, 60) * 1000
        if all(port_free(base + p) for p in (25, 587, 465, 143, 993)):
            return base
    raise RuntimeError("no free port base")


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def proc_status(pid):
    """/proc/PID/status as a dict of field -> text."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(entry))
    return sorted(kids)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def daemons_of(inst, names):
    """{name: [pid...]} of master's children running the programs named."""
    found = {name: [] for name in names}
    master = inst.master_pid()
    if not master:
        return found
    for pid in children_of(master):
        try:
            argv = cmdline(pid)
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) in found:
            found[os.path.basename(argv[0])].append(pid)
    return found


class Instance:
    """A Postern instance under a temp dir, driven through postctl."""

    def __init__(self, name="t", extra_init=(), user=None, bin_dir=BIN):
        self.base = tempfile.mkdtemp(prefix="postern-%s-" % name)
        os.chmod(self.base, 0o755)      # daemons that dropped privileges walk through it
        self.dir = os.path.join(self.base, "inst")
        self.config_dir = os.path.join(self.dir, "etc")
        self.port_base = free_port_base()
        self.smtp_port = self.port_base + 25
        self.user = user
        self.bin = bin_dir
        if user:
            subprocess.run(["chown", user, self.base], check=True)
        r = self.postctl_raw("init", "--dir", self.dir, "--hostname", "mx.example.test",
                             "--port-base", str(self.port_base),
                             "--inet-interfaces", "127.0.0.1", *extra_init, use_c=False)
        if r.returncode != 0:
            raise RuntimeError("postctl init failed: %s %s" % (r.stdout, r.stderr))

    def command(self, *args):
        cmd = [os.path.join(self.bin, "postctl")] + list(args)
        if self.user:
            import pwd
            pw = pwd.getpwnam(self.user)
            cmd = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                   "--clear-groups", "--"] + cmd
        return cmd

    def postctl_raw(self, *args, use_c=True, input=None, timeout=60):
        args = (("-c", self.config_dir) if use_c else ()) + args
        return subprocess.run(self.command(*args), capture_output=True, text=True,
                              input=input, timeout=timeout)

    def postctl(self, *args, **kw):
        r = self.postctl_raw(*args, **kw)
        if r.returncode != 0:
            raise AssertionError("postctl %s failed (%d): %s %s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r.stdout

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def log(self):
        try:
            with open(self.path("log", "postern.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def master_pid(self):
        try:
            with open(self.path("queue", "pid", "master.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def start(self):
        self.postctl("start")
        assert wait_until(lambda: self.port_open(self.smtp_port)), \
            "SMTP port not open after start; log:\n" + self.log()

    def stop(self):
        if self.master_pid():
            self.postctl_raw("stop")

    def port_open(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                return bool(s.recv(512))
        except OSError:
            return False

    def set_main_cf(self, **params):
        """Rewrite (or append) parameters in main.cf."""
        path = os.path.join(self.config_dir, "main.cf")
        with open(path) as f:
            lines = f.read().splitlines()
        for name, value in params.items():
            lines = [l for l in lines if not l.startswith(name + " ") and not l.startswith(name + "=")]
            lines.append("%s = %s" % (name, value))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def crashes(self):
        """Log lines that show a daemon crashed or panicked (sanitizer findings abort: signal 6).
        SIGKILL (9) is what tests themselves send."""
        bad = []
        for line in self.log().splitlines():
            if ("killed by signal" in line and "signal 9" not in line) or "panic:" in line:
                bad.append(line)
        return bad

    def cleanup(self):
        self.stop()
        pid = self.master_pid()
        if pid:
            os.kill(pid, 9)
        bad = self.crashes()
        if not os.environ.get("POSTERN_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)
        if bad:
            raise AssertionError("daemons crashed:\n" + "\n".join(bad))


def main():
    """Run the module's tests and end with one 'N passed, N failed' line."""
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print("%d passed, %d failed, %d skipped" % (passed, failed, len(result.skipped)))
    sys.exit(1 if failed else 0)
