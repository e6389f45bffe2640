#!/usr/bin/env python3
"""smtp_bench - SMTP ingest and delivery to Maildir: Postern against Postfix, in one run.

For 1, 10 and 50 concurrent sessions, smtp-source (Debian's postfix package)
sends N messages of 4 KB, one per connection; we time the acceptance (until
smtp-source ends) and the delivery (until all N files are in the Maildir), and
print messages/s for both systems and Postern's ratio. Postfix is the peer
instance of ../shared/peers/postfix (virtual(8) into Maildirs, default fsync
durability); it is skipped when Postfix or the peer scripts are missing.

  sudo bench/smtp_bench.py [--msgs 2000] [--sessions 1,10,50] [--size 4096] [--no-peer]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

from bench_common import Postern, PostfixPeer, clean, count_files

POSTERN_DIR = "/tmp/bench-postern"
POSTERN_PORT_BASE = 20000
USERS = [("user%d@example.test" % i, "secret") for i in range(10)]


def run_case(system, sessions, msgs, size):
    clean(system.maildir_new)
    os.sync()
    t0 = time.monotonic()
    subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(msgs), "-l", str(size),
                    "-f", "sender@remote.test", "-t", "user0@example.test",
                    "127.0.0.1:%d" % system.port], check=True, capture_output=True)
    t1 = time.monotonic()
    deadline = t1 + 600
    while count_files(system.maildir_new) < msgs and time.monotonic() < deadline:
        time.sleep(0.01)
    t2 = time.monotonic()
    delivered = count_files(system.maildir_new)
    return {"accepted_mps": msgs / (t1 - t0), "delivered_mps": delivered / (t2 - t0),
            "delivered": delivered}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msgs", type=int, default=2000)
    ap.add_argument("--sessions", default="1,10,50")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()
    if shutil.which("smtp-source") is None:
        sys.exit("smtp_bench: smtp-source not found: apt-get install postfix "
                 "(answer 'No configuration')")
    systems = [Postern(POSTERN_DIR, POSTERN_PORT_BASE, USERS)]
    if not a.no_peer and PostfixPeer.available():
        systems.append(PostfixPeer())
    results = {}
    for system in systems:
        system.setup()
        try:
            for s in [int(x) for x in a.sessions.split(",")]:
                results[(system.name, s)] = run_case(system, s, a.msgs, a.size)
                r = results[(system.name, s)]
                print("%-8s sessions=%-3d accepted %7.1f msg/s  delivered %7.1f msg/s  (%d/%d in Maildir)"
                      % (system.name, s, r["accepted_mps"], r["delivered_mps"], r["delivered"], a.msgs),
                      flush=True)
        finally:
            system.teardown()
    print("\n| sessions | Postern accepted/s | Postern delivered/s | Postfix accepted/s | "
          "Postfix delivered/s | ratio delivered |")
    print("|---|---|---|---|---|---|")
    for s in [int(x) for x in a.sessions.split(",")]:
        p = results[("Postern", s)]
        f = results.get(("Postfix", s))
        print("| %d | %.0f | %.0f | %s | %s | %s |" % (
            s, p["accepted_mps"], p["delivered_mps"],
            "%.0f" % f["accepted_mps"] if f else "-", "%.0f" % f["delivered_mps"] if f else "-",
            "%.2fx" % (p["delivered_mps"] / f["delivered_mps"]) if f and f["delivered_mps"] else "-"))


if __name__ == "__main__":
    main()
