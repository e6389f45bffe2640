#!/usr/bin/env python3
"""auth_bench - authentications per second through authd's socket, and the delay a wrong password gets.

Speaks Dovecot's authentication protocol to authd as smtpd or a Postfix would: N connections,
each keeping a few requests in flight, PLAIN logins of a SHA512-CRYPT user. Needs root (the socket
belongs to the mail system's user). Target from the issue: not a bottleneck at 100 logins/s on 2 cores.

  sudo bench/auth_bench.py [--logins 2000] [--connections 4] [--inflight 4]
"""
import argparse
import os
import time

from bench_common import AuthClient, Postern

DIR = "/tmp/bench-auth"
USER, PASSWORD = "bench@example.test", "bench-secret"


def client(path):
    return AuthClient(path, rip="127.0.0.1")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logins", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=4)
    a = ap.parse_args()
    postern = Postern(DIR, 21000, [(USER, PASSWORD)], hostname=None)
    postern.create()
    postern.start()
    path = postern.path("queue", "private", "auth")
    for _ in range(100):
        if os.path.exists(path):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    try:
        clients = [client(path) for _ in range(a.connections)]
        per = a.logins // a.connections
        ok = 0
        t0 = time.monotonic()
        for c in clients:
            for _ in range(min(a.inflight, per)):
                c.send(USER, PASSWORD)
        sent = {id(c): min(a.inflight, per) for c in clients}
        done = {id(c): 0 for c in clients}
        while any(done[id(c)] < per for c in clients):
            for c in clients:
                if done[id(c)] < per:
                    ok += c.verdict() == "OK"
                    done[id(c)] += 1
                    if sent[id(c)] < per:
                        c.send(USER, PASSWORD)
                        sent[id(c)] += 1
        elapsed = time.monotonic() - t0
        total = per * a.connections
        print("SHA512-CRYPT logins: %d in %.2f s = %.0f logins/s (%d OK) over %d connections x %d in flight"
              % (total, elapsed, total / elapsed, ok, a.connections, a.inflight))
        bad = client(path)
        t0 = time.monotonic()
        bad.send(USER, "wrong")
        verdict = bad.verdict()
        print("wrong password: %s after %.2f s (auth_failure_delay)" % (verdict, time.monotonic() - t0))
    finally:
        postern.teardown()


if __name__ == "__main__":
    main()
