#!/usr/bin/env python3
"""smtp_out_bench - outbound delivery: Postern's smtp agent against Postfix's, in one run.

Ten destinations (d0.test .. d9.test), each routed by transport_maps to its own Postfix
smtp-sink (Debian's postfix package) on 127.0.0.1. smtp-source injects N messages of SIZE
bytes, N/10 per domain, over 2 sessions per domain (20 at once); we time from the first
connection until the sinks have received all N, and print delivered messages/s for both
systems and Postern's ratio. The time includes acceptance (smtpd, queue file fsync), so
both systems do the same whole job: accept, queue, relay. Postfix is the peer instance of
../shared/peers/postfix with transport_maps added (skipped when Postfix or the peer scripts
are missing, or with --no-peer).

  sudo bench/smtp_out_bench.py [--msgs 5000] [--size 4096] [--no-peer]
"""
import argparse
import random
import socket
import shutil
import subprocess
import sys
import threading
import time

from bench_common import Postern, PostfixPeer

POSTERN_DIR = "/tmp/bench-out-postern"
NDEST = 10


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_base(ports):
    """A base N (thousands) with N + each of ports free on loopback (other tests run beside us)."""
    for _ in range(200):
        base = random.randrange(30, 60) * 1000
        if all(port_free(base + p) for p in ports):
            return base
    raise RuntimeError("no free ports")


POSTERN_PORT_BASE = free_base((25, 587, 465, 143, 993))
SINK_PORT = free_base(range(100, 100 + NDEST)) + 100


class Sink:
    """One smtp-sink; .count is its delivered-message counter (its "mesg=N" output)."""

    def __init__(self, port):
        self.port = port
        self.count = 0
        self.proc = subprocess.Popen(["smtp-sink", "-u", "postfix", "-c", "127.0.0.1:%d" % port, "256"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            buf += chunk
            *done, buf = buf.split(b"\r")
            for rec in done[-1:]:
                for field in rec.split():
                    if field.startswith(b"mesg="):
                        self.count = int(field[5:])

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def transport_lines():
    return "".join("d%d.test smtp:[127.0.0.1]:%d\n" % (k, SINK_PORT + k) for k in range(NDEST))


class PosternOut(Postern):
    """A Postern with transport_maps to the sinks and no domain of its own."""

    def __init__(self):
        tmap = POSTERN_DIR + "/etc/transport"
        super().__init__(POSTERN_DIR, POSTERN_PORT_BASE, domain=None,
                         extra_main_cf="transport_maps = texthash:%s\nsmtp_tls_security_level = none\n"
                         % tmap)
        self.tmap = tmap

    def create(self):
        super().create()
        with open(self.tmap, "w") as f:
            f.write(transport_lines())


class PostfixOut(PostfixPeer):
    """The peer with transport_maps to the sinks."""

    def setup(self):
        super().setup()
        with open(self.conf + "/transport", "w") as f:
            f.write(transport_lines())
        subprocess.run(["postmap", "-c", self.conf, "hash:%s/transport" % self.conf], check=True)
        self.postconf("transport_maps = hash:%s/transport" % self.conf)
        self.reload(settle=2)


def run(system, msgs, size):
    """Delivered messages/s and the injection time for one system."""
    system.setup()
    sinks = [Sink(SINK_PORT + k) for k in range(NDEST)]
    time.sleep(0.5)
    per = msgs // NDEST
    t0 = time.time()
    sources = [subprocess.Popen(["smtp-source", "-s", "2", "-m", str(per), "-l", str(size),
                                 "-f", "sender@example.test", "-t", "user@d%d.test" % k,
                                 "127.0.0.1:%d" % system.port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for k in range(NDEST)]
    for p in sources:
        p.wait()
    t_inject = time.time() - t0
    deadline = time.time() + 300
    while sum(s.count for s in sinks) < per * NDEST and time.time() < deadline:
        time.sleep(0.02)
    elapsed = time.time() - t0
    delivered = sum(s.count for s in sinks)
    for s in sinks:
        s.close()
    system.teardown()
    return delivered, elapsed, t_inject


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msgs", type=int, default=5000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--no-peer", action="store_true")
    args = ap.parse_args()
    for tool in ("smtp-sink", "smtp-source"):
        if shutil.which(tool) is None:
            sys.exit("%s not found (Debian package postfix)" % tool)
    systems = [PosternOut()]
    if not args.no_peer and PostfixPeer.available():
        systems.append(PostfixOut())
    rates = {}
    print("%d messages of %d bytes to %d destinations (smtp-sink each), 20 injecting sessions"
          % (args.msgs, args.size, NDEST))
    print("%-8s %10s %10s %12s %14s" % ("system", "delivered", "seconds", "inject s", "delivered/s"))
    for s in systems:
        delivered, elapsed, inject = run(s, args.msgs, args.size)
        rates[s.name] = delivered / elapsed if elapsed > 0 else 0
        print("%-8s %10d %10.2f %12.2f %14.0f" % (s.name, delivered, elapsed, inject, rates[s.name]))
    if "Postfix" in rates and rates["Postfix"] > 0:
        print("Postern / Postfix: %.2f" % (rates["Postern"] / rates["Postfix"]))


if __name__ == "__main__":
    main()
