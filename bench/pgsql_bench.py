#!/usr/bin/env python3
"""pgsql_bench - the PostgreSQL directory against the Berkeley DB one, in the same run.

Two instances side by side, one made with "postctl init --backend pgsql" on a PostgreSQL
server that tests/pgsql_helper.py starts in a temp dir, one with the default Berkeley DB
tables, holding the same domain and users (added with postctl on each). Measured on both:

  rcpt/s    RCPT commands in long SMTP sessions, each one recipient check (virtual_alias_maps,
            virtual_mailbox_domains, virtual_mailbox_maps lookups in smtpd): map lookups at
            the server, without process start-up or message writing
  logins/s  PLAIN logins through authd's socket (auth_passdb_maps = pgsql: vs the
            passwd-file), SHA512-CRYPT hashes, several requests in flight
  msgs/s    SMTP ingest: small messages, one recipient each, over a few connections,
            250 after DATA = fsynced in the queue (delivery runs meanwhile)

Needs root (authd's socket belongs to the mail system's users). Timings are printed, never
asserted.

  sudo bench/pgsql_bench.py [--rcpts 5000] [--logins 1000] [--messages 500] [--users 200]
"""
import argparse
import os
import smtplib
import sys
import time

from bench_common import BIN, TOP, AuthClient, timed_threads

os.environ["POSTERN_BIN"] = BIN      # postern_test's Instance reads it
sys.path.insert(0, os.path.join(TOP, "tests"))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from pgsql_helper import PgServer  # noqa: E402
from postern_test import Instance  # noqa: E402

DOMAIN = "bench.test"


def make_instance(name, pg, users):
    extra = ("--backend", "pgsql", "--pg-dsn", pg.dsn()) if pg else ()
    inst = Instance(name, extra_init=extra)
    inst.set_main_cf(mynetworks="127.0.0.0/8", auth_failure_delay="0",
                     auth_failure_delay_max="0", auth_worker_threads="2")
    inst.postctl("domain", "add", DOMAIN)
    for n in range(users):
        inst.postctl("user", "add", "u%d@%s" % (n, DOMAIN), "--password-stdin",
                     input="pw%d\n" % n)
    inst.start()
    return inst


def bench_rcpt(inst, total, users):
    per_session = 500
    start = time.time()
    done = 0
    while done < total:
        with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
            s.ehlo("bench.client")
            s.mail("sender@client.test")
            for _ in range(min(per_session, total - done)):
                code = s.rcpt("u%d@%s" % (done % users, DOMAIN))[0]
                if code != 250:
                    raise RuntimeError("RCPT got %d" % code)
                done += 1
                if done % 90 == 0:        # stay below smtpd_recipient_limit
                    s.rset()
                    s.mail("sender@client.test")
    return total / (time.time() - start)


def bench_logins(inst, total, users, connections=4, inflight=8):
    path = inst.path("mail", ".postern", "auth")
    if not os.path.exists(path):
        path = inst.path("queue", "private", "auth")
    clients = [AuthClient(path) for _ in range(connections)]
    share = total // connections
    errors = []

    def run(c):
        sent = got = 0
        while got < share:
            while sent < share and sent - got < inflight:
                n = (sent * 7) % users
                c.send("u%d@%s" % (n, DOMAIN), "pw%d" % n)
                sent += 1
            line = c.reply_line()
            got += 1
            if not line.startswith(b"OK"):
                errors.append(line)
    elapsed = timed_threads(run, [(c,) for c in clients])
    if errors:
        raise RuntimeError("logins failed: %r" % errors[:3])
    return share * connections / elapsed


def bench_ingest(inst, total, users, connections=4):
    share = total // connections
    body = b"Subject: bench\r\n\r\n" + b"x" * 2000 + b"\r\n"
    errors = []

    def run(k):
        try:
            with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=60) as s:
                for m in range(share):
                    s.sendmail("sender@client.test", ["u%d@%s" % ((k * share + m) % users, DOMAIN)],
                               body)
        except Exception as e:     # noqa: BLE001 - reported below
            errors.append(e)
    elapsed = timed_threads(run, [(k,) for k in range(connections)])
    if errors:
        raise RuntimeError("ingest failed: %r" % errors[:3])
    return share * connections / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rcpts", type=int, default=5000)
    ap.add_argument("--logins", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--users", type=int, default=200)
    args = ap.parse_args()
    pg = PgServer().start()
    insts = {}
    try:
        insts["pgsql"] = make_instance("bench-pg", pg, args.users)
        insts["bdb"] = make_instance("bench-bdb", None, args.users)
        results = {}
        for name, inst in insts.items():
            results[name] = (bench_rcpt(inst, args.rcpts, args.users),
                             bench_logins(inst, args.logins, args.users),
                             bench_ingest(inst, args.messages, args.users))
        print("%-8s %12s %12s %12s" % ("backend", "rcpt/s", "logins/s", "msgs/s"))
        for name, (r, l, m) in results.items():
            print("%-8s %12.0f %12.0f %12.1f" % (name, r, l, m))
        pr, pl, pm = results["pgsql"]
        br, bl, bm = results["bdb"]
        print("pgsql/bdb %11.2f %12.2f %12.2f" % (pr / br, pl / bl, pm / bm))
    finally:
        for inst in insts.values():
            inst.cleanup()
        pg.destroy()


if __name__ == "__main__":
    main()
