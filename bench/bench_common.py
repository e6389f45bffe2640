"""bench_common - what the bench/ scripts share, so each script holds only its measurement.

  paths       TOP (the checkout), BIN (POSTERN_BIN or build/bin), the peers of ../shared/peers
  files       count_files / clean for a Maildir's new/
  Postern     a throw-away instance made with postctl init: directory, port base, users and
              extra main.cf lines are parameters; create() then start(), or setup() for both
  PostfixPeer the Postfix of ../shared/peers/postfix (setup.sh / teardown.sh; PEER_BASE,
              PEER_PORT move it); scripts add their own configuration after setup()
  DovecotPeer the Dovecot of ../shared/peers/dovecot (PEER_BASE, PEER_IMAP_PORT, PEER_IMAPS_PORT)
  AuthClient  Dovecot's authentication protocol over authd's socket, as smtpd speaks it
  timed_threads  run one function in several threads; the wall time of all of them

Timings are for comparison within one run; nothing here measures or asserts anything.
"""
import base64
import os
import shutil
import socket
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BIN = os.environ.get("POSTERN_BIN", os.path.join(TOP, "build", "bin"))
PEERS = os.path.abspath(os.path.join(TOP, "..", "shared", "peers"))
POSTFIX_PEER = os.path.join(PEERS, "postfix")
DOVECOT_PEER = os.path.join(PEERS, "dovecot")
POSTCTL = os.path.join(BIN, "postctl")


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def clean(d):
    if os.path.isdir(d):
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))


def timed_threads(target, arg_tuples):
    """Run target(*args) in one thread per tuple, all at once; seconds until the last ends."""
    threads = [threading.Thread(target=target, args=args) for args in arg_tuples]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0


class Postern:
    """A fresh instance in directory (wiped first), listening on 127.0.0.1 at port_base + 25 etc.

    users: (address, password) pairs added with postctl after the domain (none: no domain
    either, when domain is None); extra_main_cf: text appended to main.cf before start;
    hostname: --hostname for postctl init (None: init's default)."""
    name = "Postern"

    def __init__(self, directory, port_base, users=(), domain="example.test", extra_main_cf="",
                 hostname="mx.example.test", interface="127.0.0.1"):
        self.dir = directory
        self.port_base = port_base
        self.port = port_base + 25
        self.users = list(users)
        self.domain = domain
        self.extra_main_cf = extra_main_cf
        self.hostname = hostname
        self.interface = interface
        self.postctl_cmd = [POSTCTL, "-c", directory + "/etc"]
        self.maildir_new = directory + "/mail/example.test/user0/new"

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def postctl(self, *args, **kw):
        return subprocess.run(self.postctl_cmd + list(args), check=True, capture_output=True, **kw)

    def create(self):
        """Stop a previous instance in the same directory, wipe it, init, configure, add users."""
        subprocess.run(self.postctl_cmd + ["stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        init = [POSTCTL, "init", "--dir", self.dir, "--port-base", str(self.port_base),
                "--inet-interfaces", self.interface]
        if self.hostname:
            init += ["--hostname", self.hostname]
        subprocess.run(init, check=True, capture_output=True)
        if self.extra_main_cf:
            with open(self.path("etc", "main.cf"), "a") as f:
                f.write(self.extra_main_cf)
        if self.domain:
            self.postctl("domain", "add", self.domain)
        for address, password in self.users:
            self.postctl("user", "add", address, "--password-stdin",
                         input=password.encode() + b"\n")

    def start(self, **run_kw):
        """postctl start; run_kw replaces the captured output (e.g. DEVNULL, preexec_fn)."""
        if not run_kw:
            run_kw = {"capture_output": True}
        subprocess.run(self.postctl_cmd + ["start"], check=True, **run_kw)

    def setup(self):
        self.create()
        self.start()
        time.sleep(1)

    def teardown(self):
        subprocess.run(self.postctl_cmd + ["stop"], capture_output=True)


class PostfixPeer:
    """The peer Postfix (virtual(8) into Maildirs of example.test, user0..user99)."""
    name = "Postfix"

    def __init__(self):
        self.base = os.environ.get("PEER_BASE", "/tmp/peer-postfix")
        self.port = int(os.environ.get("PEER_PORT", "10025"))
        self.conf = self.base + "/etc"
        self.maildir_new = self.base + "/vmail/example.test/user0/new"

    @staticmethod
    def available():
        """setup.sh needs root and Debian's postfix."""
        return (os.geteuid() == 0 and shutil.which("postfix") is not None
                and os.path.exists(POSTFIX_PEER + "/setup.sh"))

    def setup(self):
        subprocess.run([POSTFIX_PEER + "/setup.sh"], check=True, capture_output=True)

    def postconf(self, *settings):
        subprocess.run(["postconf", "-c", self.conf, "-e"] + list(settings), check=True,
                       capture_output=True)

    def reload(self, settle):
        subprocess.run(["postfix", "-c", self.conf, "reload"], check=True, capture_output=True)
        time.sleep(settle)

    def teardown(self):
        subprocess.run([POSTFIX_PEER + "/teardown.sh"], capture_output=True)


class DovecotPeer:
    """The peer Dovecot (IMAP on Maildir, user0..user9@example.test, password "secret"),
    in its own base and ports; preexec_fn runs in setup.sh's process (e.g. rlimits)."""
    name = "Dovecot"

    def __init__(self, base, imap_port, imaps_port, preexec_fn=None):
        self.base = base
        self.port = imap_port
        self.preexec_fn = preexec_fn
        self.env = dict(os.environ, PEER_BASE=base, PEER_IMAP_PORT=str(imap_port),
                        PEER_IMAPS_PORT=str(imaps_port))

    @staticmethod
    def available():
        return shutil.which("dovecot") is not None and os.path.exists(DOVECOT_PEER + "/setup.sh")

    def setup(self):
        self.teardown()
        # not capture_output: the daemonized dovecot keeps its stderr, so a pipe never ends
        log_path = self.base + ".setup.log"
        with open(log_path, "w") as log:
            r = subprocess.run([DOVECOT_PEER + "/setup.sh"], env=self.env, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, preexec_fn=self.preexec_fn)
        if r.returncode != 0:
            with open(log_path) as log:
                raise RuntimeError("peer setup.sh failed: " + log.read())

    def master_pid(self):
        with open(self.base + "/run/master.pid") as f:
            return int(f.read())

    def teardown(self):
        subprocess.run([DOVECOT_PEER + "/teardown.sh", "--purge"], env=self.env, capture_output=True)


class AuthClient:
    """Dovecot's auth protocol over authd's socket: PLAIN requests, several in flight.

    rip: the client address sent with each request (None: no rip= field)."""

    def __init__(self, path, rip=None):
        self.rip = b"\trip=%s" % rip.encode() if rip else b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        self.buf = b""
        while b"DONE\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("authd closed the connection during the handshake")
            self.buf += data
        self.buf = self.buf[self.buf.index(b"DONE\n") + 5:]
        self.next_id = 1

    def send(self, user, password):
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        self.sock.sendall(b"AUTH\t%d\tPLAIN\tservice=smtp%s\tresp=%s\n" % (self.next_id, self.rip, resp))
        self.next_id += 1

    def reply_line(self):
        """The next reply, the whole line (without its newline)."""
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("authd closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def verdict(self):
        """The next reply's first field: OK, FAIL or CONT."""
        return self.reply_line().split(b"\t")[0].decode()
