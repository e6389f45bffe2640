#!/usr/bin/env python3
"""auth_bench - authentications per second through authd's socket, and the delay a wrong password gets.

Speaks Dovecot's authentication protocol to authd as smtpd or a Postfix would: N connections,
each keeping a few requests in flight, PLAIN logins of a SHA512-CRYPT user. Needs root (the socket
belongs to the mail system's user). Target from the issue: not a bottleneck at 100 logins/s on 2 cores.

  sudo bench/auth_bench.py [--logins 2000] [--connections 4] [--inflight 4]
"""
import argparse
import base64
import os
import shutil
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("POSTERN_BIN", os.path.join(os.path.dirname(HERE), "build", "bin"))
DIR = "/tmp/bench-auth"


def postctl(*args, **kw):
    return subprocess.run([os.path.join(BIN, "postctl"), "-c", DIR + "/etc"] + list(args),
                          check=True, capture_output=True, **kw)


class AuthClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
        self.buf = b""
        while b"DONE\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        self.buf = self.buf[self.buf.index(b"DONE\n") + 5:]
        self.next_id = 1

    def send(self, user, password):
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        self.sock.sendall(b"AUTH\t%d\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=%s\n" % (self.next_id, resp))
        self.next_id += 1

    def reply(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("authd closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.split(b"\t")[0].decode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logins", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=4)
    a = ap.parse_args()
    subprocess.run([os.path.join(BIN, "postctl"), "-c", DIR + "/etc", "stop"], capture_output=True)
    shutil.rmtree(DIR, ignore_errors=True)
    subprocess.run([os.path.join(BIN, "postctl"), "init", "--dir", DIR, "--port-base", "21000",
                    "--inet-interfaces", "127.0.0.1"], check=True, capture_output=True)
    postctl("domain", "add", "example.test")
    postctl("user", "add", "bench@example.test", "--password-stdin", input=b"bench-secret\n")
    postctl("start")
    path = DIR + "/queue/private/auth"
    for _ in range(100):
        if os.path.exists(path):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    try:
        clients = [AuthClient(path) for _ in range(a.connections)]
        per = a.logins // a.connections
        ok = 0
        t0 = time.monotonic()
        for c in clients:
            for _ in range(min(a.inflight, per)):
                c.send("bench@example.test", "bench-secret")
        sent = {id(c): min(a.inflight, per) for c in clients}
        done = {id(c): 0 for c in clients}
        while any(done[id(c)] < per for c in clients):
            for c in clients:
                if done[id(c)] < per:
                    ok += c.reply() == "OK"
                    done[id(c)] += 1
                    if sent[id(c)] < per:
                        c.send("bench@example.test", "bench-secret")
                        sent[id(c)] += 1
        elapsed = time.monotonic() - t0
        total = per * a.connections
        print("SHA512-CRYPT logins: %d in %.2f s = %.0f logins/s (%d OK) over %d connections x %d in flight"
              % (total, elapsed, total / elapsed, ok, a.connections, a.inflight))
        bad = AuthClient(path)
        t0 = time.monotonic()
        bad.send("bench@example.test", "wrong")
        verdict = bad.reply()
        print("wrong password: %s after %.2f s (auth_failure_delay)" % (verdict, time.monotonic() - t0))
    finally:
        postctl("stop")


if __name__ == "__main__":
    main()
