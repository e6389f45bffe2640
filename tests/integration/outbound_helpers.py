"""outbound_helpers - a receiving SMTP/LMTP server for the outbound tests, and a dnsmasq.

FakeServer listens on a loopback address and port and speaks just enough SMTP
(or LMTP) to be a real peer for Postern's smtp agent: EHLO/LHLO with a chosen
list of extensions, STARTTLS with a given certificate, MAIL/RCPT/DATA with
answers the test can change at any time (4xx, 5xx per recipient, per stage),
and misbehaviour on demand: "hang" (say nothing), "drop" (close the connection).
Every transaction that reached the end of DATA is kept in .messages with
its envelope, parameters, whether it came over TLS and which connection
(number) carried it, so tests can check reuse.
"""
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time


class Message:
    def __init__(self, conn_no, mail_from, mail_params, rcpts, data, tls, helo):
        self.conn_no = conn_no
        self.mail_from = mail_from
        self.mail_params = mail_params
        self.rcpts = rcpts            # [(address, params)]
        self.data = data
        self.tls = tls
        self.helo = helo


class _Handler(socketserver.StreamRequestHandler):
    def setup(self):
        super().setup()
        self.srv = self.server.fake
        with self.srv.lock:
            self.srv.connections += 1
            self.conn_no = self.srv.connections

    def xact(self, delta):
        with self.srv.lock:
            self.srv.active += delta
            self.srv.max_active = max(self.srv.max_active, self.srv.active)

    def send(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        srv = self.srv
        tls = False
        helo = None
        if srv.greeting_action == "hang":
            time.sleep(srv.hang_seconds)
            return
        if srv.greeting_action == "drop":
            return
        self.send(srv.greeting or "220 %s ESMTP fake" % srv.hostname)
        mail_from, mail_params, rcpts = None, "", []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            verb = cmd.split(" ", 1)[0].upper()
            with srv.lock:
                srv.commands.append(cmd)
            action = srv.actions.get(verb)
            if verb in ("EHLO", "LHLO", "HELO"):
                helo = cmd.split(" ", 1)[1] if " " in cmd else ""
                if verb == "HELO" or (srv.lmtp != (verb == "LHLO")):
                    if verb == "HELO" and not srv.lmtp:
                        self.send("250 %s" % srv.hostname)
                    else:
                        self.send("500 5.5.1 wrong greeting command")
                    continue
                if srv.no_esmtp:
                    self.send("502 5.5.1 no ESMTP here")
                    continue
                exts = list(srv.extensions)
                if srv.tls_context and not tls:
                    exts.append("STARTTLS")
                lines = [srv.hostname] + exts
                for i, l in enumerate(lines):
                    self.send("250%s%s" % (" " if i == len(lines) - 1 else "-", l))
            elif verb == "STARTTLS" and srv.tls_context and not tls:
                self.send("220 2.0.0 go ahead")
                self.connection = srv.tls_context.wrap_socket(self.connection, server_side=True)
                self.rfile = self.connection.makefile("rb")
                self.wfile = self.connection.makefile("wb")
                tls = True
            elif verb == "MAIL":
                if action == "hang":
                    time.sleep(srv.hang_seconds)
                    return
                if action == "drop":
                    return
                arg = cmd[10:] if cmd.upper().startswith("MAIL FROM:") else cmd
                addr, _, params = arg.partition(" ")
                if action:
                    self.send(action)
                    continue
                mail_from, mail_params, rcpts = addr.strip("<>"), params, []
                self.xact(1)
                self.send("250 2.1.0 Ok")
            elif verb == "RCPT":
                arg = cmd[8:] if cmd.upper().startswith("RCPT TO:") else cmd
                addr, _, params = arg.partition(" ")
                addr = addr.strip("<>")
                reply = srv.rcpt_replies.get(addr.lower())
                if mail_from is None:
                    self.send("503 5.5.1 need MAIL")
                elif reply:
                    self.send(reply)
                else:
                    rcpts.append((addr, params))
                    self.send("250 2.1.5 Ok")
            elif verb == "DATA":
                if not rcpts:
                    self.send("554 5.5.1 no valid recipients")
                    continue
                if action == "hang":
                    time.sleep(srv.hang_seconds)
                    return
                self.send("354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    data.append(l[1:] if l.startswith(b".") else l)
                after = srv.actions.get("DOT")
                if srv.dot_delay:
                    time.sleep(srv.dot_delay)
                self.xact(-1)
                if after == "drop":
                    return
                if after == "hang":
                    time.sleep(srv.hang_seconds)
                    return
                with srv.lock:
                    srv.messages.append(Message(self.conn_no, mail_from, mail_params, rcpts,
                                                b"".join(data), tls, helo))
                if srv.lmtp:
                    for addr, _ in rcpts:
                        self.send(srv.lmtp_replies.get(addr.lower(), "250 2.0.0 <%s> delivered" % addr))
                else:
                    self.send(after or "250 2.0.0 Ok: queued as FAKE%d" % len(srv.messages))
                mail_from, rcpts = None, []
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 unknown command")


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256            # the agent opens many connections at once (default 5)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 256


class FakeServer:
    """An SMTP (or LMTP) server on (host, port), or on a UNIX socket path."""

    def __init__(self, host="127.0.0.1", port=0, lmtp=False, hostname="sink.example.net",
                 extensions=("PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES",
                             "DSN", "SMTPUTF8"),
                 tls_cert=None, path=None):
        self.lock = threading.Lock()
        self.lmtp = lmtp
        self.hostname = hostname
        self.extensions = list(extensions)
        self.greeting = None
        self.greeting_action = None         # "hang", "drop"
        self.no_esmtp = False
        self.actions = {}                   # verb -> reply text, or "hang"/"drop"; "DOT": after data
        self.rcpt_replies = {}              # address -> reply
        self.lmtp_replies = {}              # address -> reply after DATA (LMTP)
        self.hang_seconds = 30
        self.dot_delay = 0                  # seconds before the reply to the end of DATA
        self.messages = []
        self.commands = []
        self.connections = 0
        self.active = 0                     # transactions from MAIL to the end of DATA (completed ones), most at once
        self.max_active = 0
        self.tls_context = None
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls_cert)
            self.tls_context = ctx
        if path:
            self.server = _UnixServer(path, _Handler)
            self.port = None
        else:
            self.server = _TCPServer((host, port), _Handler)
            self.port = self.server.server_address[1]
        self.host = host
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def rcpts(self):
        with self.lock:
            return [a for m in self.messages for a, _ in m.rcpts]


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def self_signed(directory, cn="sink.example.net"):
    """(cert, key) paths of a fresh self-signed certificate for cn."""
    cert = os.path.join(directory, "sink-cert.pem")
    key = os.path.join(directory, "sink-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=DNS:%s" % cn,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


class Dnsmasq:
    """dnsmasq answering only what it is told (--mx-host, --host-record) on 127.0.0.1:port."""

    def __init__(self, args):
        self.port = free_port()
        self.proc = subprocess.Popen([DNSMASQ, "--no-daemon", "--port=%d" % self.port,
                                      "--listen-address=127.0.0.1", "--bind-interfaces",
                                      "--no-resolv", "--no-hosts", "--user=" + _dnsmasq_user(),
                                      "--pid-file="] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError("dnsmasq failed: %s" % self.proc.stderr.read().decode())

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _dnsmasq_user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name
