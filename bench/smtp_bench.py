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

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BIN = os.environ.get("POSTERN_BIN", os.path.join(TOP, "build", "bin"))
PEER = os.path.abspath(os.path.join(TOP, "..", "shared", "peers", "postfix"))
POSTERN_DIR = "/tmp/bench-postern"
POSTERN_PORT_BASE = 20000


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


class Postern:
    name = "Postern"

    def __init__(self):
        self.postctl = [os.path.join(BIN, "postctl"), "-c", POSTERN_DIR + "/etc"]
        self.port = POSTERN_PORT_BASE + 25
        self.maildir_new = POSTERN_DIR + "/mail/example.test/user0/new"

    def setup(self):
        subprocess.run(self.postctl + ["stop"], capture_output=True)
        shutil.rmtree(POSTERN_DIR, ignore_errors=True)
        subprocess.run([os.path.join(BIN, "postctl"), "init", "--dir", POSTERN_DIR, "--port-base",
                        str(POSTERN_PORT_BASE), "--inet-interfaces", "127.0.0.1",
                        "--hostname", "mx.example.test"], check=True, capture_output=True)
        subprocess.run(self.postctl + ["domain", "add", "example.test"], check=True, capture_output=True)
        for i in range(10):
            subprocess.run(self.postctl + ["user", "add", "user%d@example.test" % i, "--password-stdin"],
                           input=b"secret\n", check=True, capture_output=True)
        subprocess.run(self.postctl + ["start"], check=True, capture_output=True)
        time.sleep(1)

    def teardown(self):
        subprocess.run(self.postctl + ["stop"], capture_output=True)


class Postfix:
    name = "Postfix"

    def __init__(self):
        self.base = os.environ.get("PEER_BASE", "/tmp/peer-postfix")
        self.port = int(os.environ.get("PEER_PORT", "10025"))
        self.maildir_new = self.base + "/vmail/example.test/user0/new"

    def setup(self):
        subprocess.run([PEER + "/setup.sh"], check=True, capture_output=True)

    def teardown(self):
        subprocess.run([PEER + "/teardown.sh"], capture_output=True)


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
    systems = [Postern()]
    if not a.no_peer and os.geteuid() == 0 and shutil.which("postfix") and os.path.exists(PEER + "/setup.sh"):
        systems.append(Postfix())
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
