"""smtpd_helpers - what the smtpd integration tests share: a tiny DNS server,
a policy service speaking Postfix's policy delegation protocol, a raw SMTP
client, extra smtpd services in master.cf, and queue file reading.

Both servers are real: UDP packets and socket connections on loopback, run
in threads of the test process, stdlib only.
"""
import glob
import os
import socket
import struct
import threading
import time


class DNSServer:
    """Answers by the name's suffix (case-insensitive):
      *.exists.test / exists.test     MX and A
      *.a-only.test / a-only.test     A only (no MX)
      *.nullmx.test / nullmx.test     MX 0 . (RFC 7505)
      *.nx.test / nx.test             NXDOMAIN
      *.fail.test / fail.test         SERVFAIL
      anything else                   NXDOMAIN
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def zone(name):
        name = name.lower().rstrip(".")
        for z in ("exists.test", "a-only.test", "nullmx.test", "nx.test", "fail.test"):
            if name == z or name.endswith("." + z):
                return z
        return None

    def answer(self, data):
        if len(data) < 17:
            return None
        qid, flags, qd = struct.unpack("!HHH", data[:6])
        pos, labels = 12, []
        while pos < len(data) and data[pos] != 0:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode("latin-1"))
            pos += 1 + n
        qend = pos + 5
        qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
        name = ".".join(labels)
        self.queries.append((name, qtype))
        z = self.zone(name)
        rcode, records = 0, []
        if z in (None, "nx.test"):
            rcode = 3
        elif z == "fail.test":
            rcode = 2
        elif z == "exists.test" and qtype == 15:
            records.append((15, struct.pack("!H", 10) + b"\x04mail\xc0\x0c"))
        elif z in ("exists.test", "a-only.test") and qtype == 1:
            records.append((1, bytes([192, 0, 2, 25])))
        elif z == "nullmx.test" and qtype == 15:
            records.append((15, b"\x00\x00\x00"))
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(records), 0, 0)
        out = header + data[12:qend]
        for rtype, rdata in records:
            out += b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata
        return out

    def serve(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                data, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(data)
            if reply:
                self.sock.sendto(reply, peer)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class PolicyServer:
    """Postfix policy delegation protocol on a UNIX or TCP socket. decide(attrs)
    returns the action text; every request and each accepted connection is
    recorded. silent=True reads requests and never answers (timeouts)."""

    def __init__(self, decide, unix_path=None, silent=False):
        self.decide = decide
        self.silent = silent
        self.requests = []
        self.connections = 0
        self.errors = []
        if unix_path:
            if os.path.exists(unix_path):
                os.unlink(unix_path)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            os.chmod(unix_path, 0o666)      # smtpd runs as the mail owner
            self.address = "unix:" + unix_path
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = "inet:127.0.0.1:%d" % self.sock.getsockname()[1]
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def accept_loop(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        f = conn.makefile("rwb")
        attrs = {}
        try:
            while self.running:
                line = f.readline()
                if not line:
                    return
                line = line.rstrip(b"\n").decode("utf-8", "replace")
                if line:
                    if "=" not in line:
                        self.errors.append("line without '=': %r" % line)
                        return
                    name, _, value = line.partition("=")
                    if name in attrs:
                        self.errors.append("duplicate attribute %s" % name)
                    attrs[name] = value
                    continue
                self.requests.append(attrs)
                if not self.silent:
                    f.write(("action=%s\n\n" % self.decide(attrs)).encode())
                    f.flush()
                attrs = {}
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Client:
    """A raw SMTP client: exact bytes out, whole (multi-line) replies in."""

    def __init__(self, port, source="127.0.0.2", greet=True, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.f = self.sock.makefile("rb")
        self.greeting = self.read() if greet else None

    def read(self):
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                return 0, (b"".join(lines) + b"(connection closed)").decode("utf-8", "replace")
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines).decode("utf-8", "replace").rstrip()

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.sock.sendall(line + b"\r\n")
        return self.read()

    def close(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.read()
        except OSError:
            pass
        self.sock.close()


def add_services(inst, services):
    """Append smtpd services to master.cf: {port_offset: ["name=value", ...]}."""
    path = os.path.join(inst.config_dir, "master.cf")
    with open(path, "a") as f:
        for offset, overrides in services.items():
            f.write("%d inet n - y - - smtpd\n" % (inst.port_base + offset))
            for o in overrides:
                f.write("  -o %s\n" % o)


def write_table(inst, name, lines):
    """A texthash table in the config directory; returns its map spec."""
    path = os.path.join(inst.config_dir, name)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return "texthash:" + path


def queue_file_envelope(inst, queue_id, timeout=10):
    """The envelope lines of a queue file (wherever in the queue it is) as a list
    of (name, value); None if it cannot be found in time."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in glob.glob(inst.path("queue", "*", queue_id)):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if data[:4] != b"PSTQ":
                continue
            env_len = struct.unpack("<I", data[12:16])[0]
            env = data[96:96 + env_len].decode("utf-8", "replace")
            return [tuple(line.split("=", 1)) for line in env.splitlines()]
        time.sleep(0.05)
    return None
