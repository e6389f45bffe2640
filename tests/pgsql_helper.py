#!/usr/bin/python3
"""pgsql_helper - a real PostgreSQL server in a temporary directory, for tests and benchmarks.

Debian's postgresql package (initdb, pg_ctl from /usr/lib/postgresql/VERSION/bin) runs the
server as an unprivileged user (the package's "postgres" account, else "nobody") when we are
root, on a free loopback port with its socket in the cluster directory. It listens on
127.0.0.1 and ::1 only. Role "postern" (password "postern-secret") owns database "mail".

    pg = PgServer(); pg.start()
    pg.psql("SELECT 1")            # as the superuser, database mail; returns stdout
    pg.stop(); pg.start()          # a restart, same port and data
    pg.destroy()

From C unit tests or shell: "pgsql_helper.py start DIR" starts a server whose cluster lives
in DIR/pg and prints its port; "pgsql_helper.py stop DIR" stops it (start again: same port, same data). A missing PostgreSQL is an
error (RuntimeError / exit 1), never a silent skip: CI installs it.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

PG_USER = "postern"
PG_PASSWORD = "postern-secret"
PG_DB = "mail"
SUPERUSER = "pgadmin"
SUPERUSER_PASSWORD = "pgadmin-secret"


def pg_bindir():
    """The newest installed server's bin directory; RuntimeError if there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL server not installed (apt-get install postgresql): "
                           "the pgsql tests need a real server")
    return os.path.dirname(found[-1])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, base=None, port=None, socket_dirs=()):
        """socket_dirs: more directories for the server's unix socket (e.g. inside a
        daemon's chroot); they are created and given to the server's user."""
        self.bindir = pg_bindir()
        self.socket_dirs = list(socket_dirs)
        self.own_base = base is None
        self.base = base or tempfile.mkdtemp(prefix="postern-pg-")
        self.data = os.path.join(self.base, "pg")
        self.log = os.path.join(self.base, "pg.log")
        self.port = port
        self.runas = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.runas = pwd.getpwnam(name)
                    break
                except KeyError:
                    pass
            if self.runas is None:
                raise RuntimeError("no unprivileged user to run PostgreSQL as")

    # -- running commands as the server's user
    def _run(self, argv, check=True, input=None, env=None):
        kw = {}
        if self.runas is not None:
            kw = dict(user=self.runas.pw_uid, group=self.runas.pw_gid, extra_groups=[])
        e = dict(os.environ)
        e.update({"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "HOME": self.base})
        if env:
            e.update(env)
        p = subprocess.run(argv, input=input, capture_output=True, text=True, env=e,
                           cwd=self.base, **kw)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (argv[0], p.returncode, p.stdout,
                                                          p.stderr))
        return p

    def _chown(self, path):
        if self.runas is not None:
            os.chown(path, self.runas.pw_uid, self.runas.pw_gid)

    def init(self):
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755)
        self._chown(self.base)
        for d in self.socket_dirs:
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
            self._chown(d)
        pwfile = os.path.join(self.base, "pwfile")
        with open(pwfile, "w") as f:
            f.write(SUPERUSER_PASSWORD + "\n")
        self._chown(pwfile)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", SUPERUSER,
                   "--pwfile", pwfile, "-E", "UTF8", "--locale=C.UTF-8",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "-N"])
        os.unlink(pwfile)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            # a test server: nothing to protect across a crash, and small
            # (synchronous_commit stays on: tests stop the server with -m immediate and
            # expect what was committed to be there)
            f.write("fsync = off\nfull_page_writes = off\n"
                    "shared_buffers = 16MB\nmax_connections = 100\n"
                    "unix_socket_directories = '%s'\nlisten_addresses = '127.0.0.1,::1'\n"
                    "log_min_messages = warning\n" % ",".join([self.base] + self.socket_dirs))

    def start(self):
        """initdb on first use, then start and wait until it accepts connections."""
        fresh = not os.path.exists(os.path.join(self.data, "PG_VERSION"))
        if fresh:
            self.init()
        if self.port is None:
            self.port = free_port()
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log,
                   "-w", "-t", "60", "-o", "-p %d" % self.port, "start"])
        if fresh:
            self.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PG_USER, PG_PASSWORD),
                      db="postgres")
            self.psql("CREATE DATABASE %s OWNER %s" % (PG_DB, PG_USER), db="postgres")
        return self

    def stop(self, mode="fast"):
        self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w",
                   "stop"], check=False)

    def running(self):
        p = self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "status"],
                      check=False)
        return p.returncode == 0

    def destroy(self):
        self.stop("immediate")
        if self.own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql, db=PG_DB, user=SUPERUSER, check=True):
        """Run SQL through psql over the unix socket; stdout (unaligned, tuples only)."""
        p = self._run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.base,
                       "-p", str(self.port), "-U", user, "-d", db], input=sql, check=check)
        return p.stdout

    # -- what Postern's files need
    def dsn(self, host="127.0.0.1"):
        return "host=%s port=%d dbname=%s user=%s password=%s" % (host, self.port, PG_DB,
                                                                   PG_USER, PG_PASSWORD)

    def map_file(self, path, query, hosts=None, **extra):
        """Write a pgsql: map file for query; returns "pgsql:PATH"."""
        lines = ["hosts = %s" % (hosts or "127.0.0.1:%d" % self.port),
                 "user = %s" % PG_USER, "password = %s" % PG_PASSWORD, "dbname = %s" % PG_DB,
                 "query = %s" % query]
        for k, v in extra.items():
            lines.append("%s = %s" % (k, v))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return "pgsql:" + path


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: pgsql_helper.py start|stop DIR", file=sys.stderr)
        return 2
    base = os.path.abspath(argv[2])
    portfile = os.path.join(base, "port")
    try:
        port = int(open(portfile).read()) if os.path.exists(portfile) else None
        if argv[1] == "start":
            os.makedirs(base, exist_ok=True)
            pg = PgServer(base=base, port=port).start()
            with open(portfile, "w") as f:
                f.write("%d\n" % pg.port)
            print(pg.port)
        else:
            PgServer(base=base, port=port).stop("immediate")
    except RuntimeError as e:
        print("pgsql_helper: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
