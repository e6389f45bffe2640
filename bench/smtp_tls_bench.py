#!/usr/bin/env python3
"""smtp_tls_bench - SMTP ingest with STARTTLS: Postern against Postfix, in one run.

10 concurrent sessions (threads of this script, Python's smtplib and ssl) each
send their share of N messages of 4 KB to user0@example.test, in two modes:
  session   one STARTTLS session per thread, messages one after another in it
  reconnect a new connection, EHLO, STARTTLS, EHLO for every message (the TLS
            handshake is then part of each message's latency)
For each we print messages/s accepted and the per-message latency (MAIL FROM
to the final 250, plus connect+STARTTLS in reconnect mode) p50 and p99, and
the ratio against Postfix. Postfix is the peer instance of
../shared/peers/postfix, given a self-signed certificate and
smtpd_tls_security_level = may here (postconf -e, reload); it is skipped when
Postfix or the peer scripts are missing. Timings are for comparison within
one run only; nothing is asserted.

  sudo bench/smtp_tls_bench.py [--msgs 2000] [--sessions 10] [--size 4096] [--no-peer]
"""
import argparse
import os
import smtplib
import ssl
import subprocess
import sys
import time

from bench_common import BIN, Postern, PostfixPeer, count_files, timed_threads

POSTERN_DIR = "/tmp/bench-postern-tls"
POSTERN_PORT_BASE = 21000


class PostfixTLS(PostfixPeer):
    """The peer with a self-signed certificate and smtpd_tls_security_level = may."""

    def setup(self):
        super().setup()
        cert, key = self.conf + "/bench-cert.pem", self.conf + "/bench-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=mx.example.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        self.postconf("smtpd_tls_cert_file=" + cert, "smtpd_tls_key_file=" + key,
                      "smtpd_tls_security_level=may")
        self.reload(settle=1)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE             # both servers use self-signed certificates
    return ctx


def message(size, i):
    head = ("From: <sender@remote.test>\r\nTo: <user0@example.test>\r\n"
            "Subject: tls bench %d\r\n\r\n" % i).encode()
    line = b"X" * 76 + b"\r\n"
    n = max(0, size - len(head))
    return head + line * (n // len(line)) + b"Y" * (n % len(line)) + b"\r\n"


def open_session(port, ctx):
    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
    s.ehlo("bench.remote.test")
    s.starttls(context=ctx)
    s.ehlo("bench.remote.test")
    return s


def send_one(s, body):
    s.mail("sender@remote.test")
    s.rcpt("user0@example.test")
    code, text = s.data(body)
    if code != 250:
        raise RuntimeError("DATA: %d %s" % (code, text))


def worker(port, mode, count, size, offset, latencies, errors):
    ctx = tls_context()
    try:
        s = open_session(port, ctx) if mode == "session" else None
        for i in range(count):
            body = message(size, offset + i)
            t0 = time.perf_counter()
            if mode == "reconnect":
                s = open_session(port, ctx)
            send_one(s, body)
            if mode == "reconnect":
                s.quit()
            latencies.append(time.perf_counter() - t0)
        if mode == "session":
            s.quit()
    except Exception as e:      # noqa: BLE001 - reported, the run goes on
        errors.append(repr(e))


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def run_case(system, mode, sessions, msgs, size):
    per = msgs // sessions
    latencies, errors = [], []
    before = count_files(system.maildir_new)
    elapsed = timed_threads(worker, [(system.port, mode, per, size, k * per, latencies, errors)
                                     for k in range(sessions)])
    deadline = time.monotonic() + 300
    while count_files(system.maildir_new) < before + len(latencies) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"mps": len(latencies) / elapsed, "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000, "sent": len(latencies),
            "delivered": count_files(system.maildir_new) - before, "errors": errors}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msgs", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--modes", default="session,reconnect")
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(BIN, "postctl")):
        sys.exit("smtp_tls_bench: %s/postctl not found (set POSTERN_BIN)" % BIN)
    systems = [Postern(POSTERN_DIR, POSTERN_PORT_BASE, [("user0@example.test", "secret")])]
    if not a.no_peer and PostfixPeer.available():
        systems.append(PostfixTLS())
    modes = a.modes.split(",")
    results = {}
    for system in systems:
        system.setup()
        try:
            for mode in modes:
                r = run_case(system, mode, a.sessions, a.msgs, a.size)
                results[(system.name, mode)] = r
                print("%-8s %-9s sessions=%d  %7.1f msg/s  p50 %6.2f ms  p99 %7.2f ms  "
                      "(%d sent, %d delivered%s)" % (
                          system.name, mode, a.sessions, r["mps"], r["p50"], r["p99"], r["sent"],
                          r["delivered"], ", errors: %s" % r["errors"][:3] if r["errors"] else ""),
                      flush=True)
        finally:
            system.teardown()
    print("\n| mode | Postern msg/s | Postern p50/p99 ms | Postfix msg/s | Postfix p50/p99 ms "
          "| ratio msg/s | ratio p99 (lower is better) |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        p = results[("Postern", mode)]
        f = results.get(("Postfix", mode))
        print("| %s | %.0f | %.2f / %.2f | %s | %s | %s | %s |" % (
            mode, p["mps"], p["p50"], p["p99"],
            "%.0f" % f["mps"] if f else "-",
            "%.2f / %.2f" % (f["p50"], f["p99"]) if f else "-",
            "%.2fx" % (p["mps"] / f["mps"]) if f and f["mps"] else "-",
            "%.2fx" % (p["p99"] / f["p99"]) if f and f["p99"] else "-"))


if __name__ == "__main__":
    main()
