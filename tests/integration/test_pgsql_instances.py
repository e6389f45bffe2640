"""Instances on PostgreSQL: "postctl init --backend pgsql --pg-dsn DSN" (map files, main.cf,
schema.sql), postctl domain/user/alias writing to the database, and two instances (127.0.0.1
and 127.0.0.2) sharing one database: a user added through either receives mail and logs in
through the other at once; a user deleted through one is refused by the other. Also the
how-to schema (one table per class with an `enabled` column, SHA1 hex passwords) served by
just writing other queries."""
import glob
import hashlib
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pgsql_helper import PG_USER, PgServer  # noqa: E402
from postern_test import Instance, main, wait_until  # noqa: E402

DOMAIN = "example.test"


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def port_open(addr, port):
    try:
        with socket.create_connection((addr, port), timeout=1) as s:
            return bool(s.recv(512))
    except OSError:
        return False


class Node:
    """An instance listening on addr, on the shared database."""

    def __init__(self, name, addr, pg):
        self.addr = addr
        self.inst = Instance(name, extra_init=("--inet-interfaces", addr, "--backend", "pgsql",
                                               "--pg-dsn", pg.dsn()))
        self.inst.set_main_cf(mynetworks="192.0.2.0/24")

    def start(self):
        self.inst.postctl("start")
        assert wait_until(lambda: port_open(self.addr, self.inst.smtp_port)), self.inst.log()

    def rcpt(self, rcpt):
        with smtplib.SMTP(self.addr, self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@client.test")
            return s.rcpt(rcpt)[0]

    def send(self, rcpt, marker):
        with smtplib.SMTP(self.addr, self.inst.smtp_port, timeout=30) as s:
            s.sendmail("sender@client.test", [rcpt], b"Subject: %s\r\n\r\nbody\r\n" % marker.encode())

    def delivered(self, user, marker):
        out = []
        for path in glob.glob(self.inst.path("mail", DOMAIN, user, "new", "*")):
            with open(path, errors="replace") as f:
                if "Subject: " + marker in f.read():
                    out.append(path)
        return out

    def login(self, user, password):
        with smtplib.SMTP_SSL(self.addr, self.inst.port_base + 465, timeout=30,
                              context=tls_context()) as s:
            try:
                return s.login(user, password)[0]
            except smtplib.SMTPResponseException as e:
                return e.smtp_code


class TwoInstancesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer().start()
        cls.nodes = []
        try:
            cls.a = Node("pgnode-a", "127.0.0.1", cls.pg)
            cls.nodes.append(cls.a)
            cls.b = Node("pgnode-b", "127.0.0.2", cls.pg)   # schema.sql again: a no-op
            cls.nodes.append(cls.b)
            cls.a.inst.postctl("domain", "add", DOMAIN)
            cls.a.start()
            cls.b.start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for n in cls.nodes:
                n.inst.cleanup()
        finally:
            cls.pg.destroy()

    def test_init_wrote_map_files(self):
        i = self.a.inst
        conf = i.postctl("conf", "virtual_mailbox_maps", "auth_passdb_maps")
        self.assertIn("pgsql:", conf)
        cf = i.path("etc", "pgsql", "mailboxes.cf")
        self.assertEqual(os.stat(cf).st_mode & 0o777, 0o600)
        with open(cf) as f:
            self.assertIn("hosts = 127.0.0.1:%d\n" % self.pg.port, f.read())
        self.assertIn("mailboxes", self.pg.psql("SELECT tablename FROM pg_tables", user=PG_USER))

    def test_user_added_on_one_is_served_by_the_other(self):
        a, b = self.a, self.b
        self.assertEqual(a.rcpt("carol@" + DOMAIN), 550)
        self.assertEqual(b.rcpt("carol@" + DOMAIN), 550)
        b.inst.postctl("user", "add", "carol@" + DOMAIN, "--password-stdin", input="carol-pw\n")
        self.assertIn("carol@" + DOMAIN, a.inst.postctl("user", "list"))
        # at once: no reload, no cache
        self.assertEqual(a.rcpt("carol@" + DOMAIN), 250)
        a.send("carol@" + DOMAIN, "via a")
        self.assertTrue(wait_until(lambda: a.delivered("carol", "via a"), timeout=20),
                        a.inst.log())
        self.assertEqual(a.login("carol@" + DOMAIN, "carol-pw"), 235)
        self.assertEqual(b.login("carol@" + DOMAIN, "carol-pw"), 235)
        a.inst.postctl("user", "passwd", "carol@" + DOMAIN, "--password-stdin", input="new-pw\n")
        self.assertEqual(b.login("carol@" + DOMAIN, "new-pw"), 235)
        # an alias added on b routes on a
        b.inst.postctl("alias", "add", "team@" + DOMAIN, "carol@" + DOMAIN)
        a.send("team@" + DOMAIN, "team via a")
        self.assertTrue(wait_until(lambda: a.delivered("carol", "team via a"), timeout=20),
                        a.inst.log())
        # disabled on a: no login on b, mail still accepted (as with the Berkeley DB backend)
        a.inst.postctl("user", "disable", "carol@" + DOMAIN)
        self.assertEqual(b.login("carol@" + DOMAIN, "new-pw"), 535)
        self.assertEqual(b.rcpt("carol@" + DOMAIN), 250)
        a.inst.postctl("user", "enable", "carol@" + DOMAIN)
        # deleted on a: refused by b at once
        a.inst.postctl("user", "del", "carol@" + DOMAIN)
        self.assertEqual(b.rcpt("carol@" + DOMAIN), 550)
        self.assertNotIn("carol@", b.inst.postctl("user", "list"))
        b.inst.postctl("alias", "del", "team@" + DOMAIN)
        self.assertEqual(a.rcpt("team@" + DOMAIN), 550)

    def test_quota_from_the_database(self):
        # a quota set through one instance is enforced by the other's virtual agent
        a, b = self.a, self.b
        b.inst.postctl("user", "add", "quinn@" + DOMAIN, "--quota", "1K", "--password-stdin",
                       input="quinn-pw\n")
        self.assertIn("mailbox_limits.cf", a.inst.postctl("conf", "virtual_mailbox_limit_maps"))
        with smtplib.SMTP(a.addr, a.inst.smtp_port, timeout=30) as s:
            s.sendmail("sender@client.test", ["quinn@" + DOMAIN],
                       b"Subject: too big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 30)
        self.assertTrue(wait_until(lambda: "to=<quinn@%s>" % DOMAIN in a.inst.log()
                                   and "mailbox full" in a.inst.log(), timeout=20), a.inst.log())
        self.assertEqual(a.delivered("quinn", "too big"), [])
        a.inst.postctl("user", "del", "quinn@" + DOMAIN)

    def test_domains_and_relay(self):
        a, b = self.a, self.b
        self.assertEqual(b.rcpt("x@backup.test"), 554)
        a.inst.postctl("domain", "add", "backup.test", "--relay")
        self.assertEqual(b.rcpt("x@backup.test"), 250)
        self.assertIn("backup.test relay", b.inst.postctl("domain", "list"))
        a.inst.postctl("domain", "del", "backup.test")
        self.assertEqual(b.rcpt("x@backup.test"), 554)
        # bad input is refused by postctl, not passed on
        r = a.inst.postctl_raw("user", "add", "x'; DROP TABLE mailboxes; --@" + DOMAIN,
                               "--password-stdin", input="pw\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("mailboxes", self.pg.psql("SELECT tablename FROM pg_tables", user=PG_USER))


class MigrateTest(unittest.TestCase):
    """postctl migrate: a Berkeley DB instance's tables and passwd-file into PostgreSQL."""

    @classmethod
    def setUpClass(cls):
        cls.pg = PgServer().start()
        cls.inst = i = Instance("pgmigrate")
        transport = i.path("etc", "transport")
        with open(transport, "w") as f:
            f.write("closed.test error:5.7.1 closed for good\n.sub.test discard:\n")
        i.postctl("map", transport)
        i.set_main_cf(mynetworks="192.0.2.0/24", transport_maps="hash:" + transport)
        i.postctl("domain", "add", DOMAIN)
        i.postctl("domain", "add", "backup.test", "--relay")
        i.postctl("user", "add", "gina@" + DOMAIN, "--quota", "2M", "--password-stdin",
                  input="gina-pw\n")
        i.postctl("user", "add", "hank@" + DOMAIN, "--password-stdin", input="hank-pw\n")
        i.postctl("user", "disable", "hank@" + DOMAIN)
        i.postctl("alias", "add", "crew@" + DOMAIN, "gina@" + DOMAIN, "hank@" + DOMAIN)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.pg.destroy()

    def test_migrate(self):
        i = self.inst
        # a table migrate could not copy stops it before anything changes
        i.set_main_cf(transport_maps="inline:{closed.test=error:x}")
        r = i.postctl_raw("migrate", "--pg-dsn", self.pg.dsn())
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("transport_maps = inline:{closed.test=error:x}: no hash:, btree: or texthash: table", r.stderr)
        self.assertNotIn("pgsql:", i.postctl("conf", "virtual_mailbox_maps"))
        i.set_main_cf(transport_maps="hash:" + i.path("etc", "transport"))
        out = i.postctl("migrate", "--pg-dsn", self.pg.dsn())
        self.assertIn("2 domains, 2 mailboxes, 2 alias destinations, 2 transports, 2 passwords", out)
        self.assertIn("pgsql:", i.postctl("conf", "virtual_mailbox_maps"))
        self.assertEqual(self.pg.psql("SELECT address, quota FROM mailboxes ORDER BY address",
                                      user=PG_USER).split(),
                         ["gina@example.test|2097152", "hank@example.test|0"])
        # a second run is refused: the instance is on PostgreSQL now
        self.assertNotEqual(i.postctl_raw("migrate", "--pg-dsn", self.pg.dsn()).returncode, 0)
        i.start()
        node = Node.__new__(Node)
        node.addr, node.inst = "127.0.0.1", i
        self.assertEqual(node.rcpt("gina@" + DOMAIN), 250)
        self.assertEqual(node.rcpt("x@backup.test"), 250)
        self.assertEqual(node.rcpt("nobody@" + DOMAIN), 550)
        self.assertEqual(self.pg.psql("SELECT destination, transport FROM transports ORDER BY 1",
                                      user=PG_USER).splitlines(),
                         [".sub.test|discard:", "closed.test|error:5.7.1 closed for good"])
        self.assertEqual(node.login("gina@" + DOMAIN, "gina-pw"), 235)
        self.assertEqual(node.login("hank@" + DOMAIN, "hank-pw"), 535)    # disabled stays so
        node.send("crew@" + DOMAIN, "crew")
        self.assertTrue(wait_until(lambda: node.delivered("gina", "crew"), timeout=20), i.log())


HOWTO_SCHEMA = """
CREATE TABLE relay_domains (id serial PRIMARY KEY, domain varchar(255) NOT NULL UNIQUE,
                            enabled smallint NOT NULL DEFAULT 1);
CREATE TABLE virtual_aliases (id serial PRIMARY KEY, address varchar(255) NOT NULL UNIQUE,
                              destination varchar(255) NOT NULL,
                              enabled smallint NOT NULL DEFAULT 1);
CREATE TABLE vmailbox_domains (id serial PRIMARY KEY, domain varchar(255) NOT NULL UNIQUE,
                               enabled smallint NOT NULL DEFAULT 1);
CREATE TABLE vmailbox_users (id serial PRIMARY KEY, username varchar(64) NOT NULL UNIQUE,
                             domain varchar(255) NOT NULL, password varchar(64) NOT NULL,
                             enabled smallint NOT NULL DEFAULT 1);
INSERT INTO vmailbox_domains (domain) VALUES ('example.test');
INSERT INTO relay_domains (domain, enabled) VALUES ('backup.test', 1), ('old.test', 0);
INSERT INTO vmailbox_users (username, domain, password, enabled) VALUES
    ('erin', 'example.test', '%s', 1), ('frank', 'example.test', '%s', 0);
INSERT INTO virtual_aliases (address, destination) VALUES ('info@example.test', 'erin@example.test');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO postern;
"""


class HowtoSchemaTest(unittest.TestCase):
    """The guide's tables (seed 000), only the queries of the map files differ."""

    @classmethod
    def setUpClass(cls):
        cls.pg = pg = PgServer().start()
        sha = lambda p: hashlib.sha1(p.encode()).hexdigest()  # noqa: E731
        pg.psql(HOWTO_SCHEMA % (sha("erin-pw"), sha("frank-pw")))
        cls.inst = i = Instance("pghowto")
        etc = i.path("etc")
        i.set_main_cf(
            mynetworks="192.0.2.0/24",
            virtual_mailbox_domains=pg.map_file(
                os.path.join(etc, "vd.cf"),
                "SELECT domain FROM vmailbox_domains WHERE domain = '%s' AND enabled = 1"),
            virtual_mailbox_maps=pg.map_file(
                os.path.join(etc, "vu.cf"),
                "SELECT domain || '/' || username || '/' FROM vmailbox_users "
                "WHERE username = '%u' AND domain = '%d' AND enabled = 1"),
            virtual_alias_maps=pg.map_file(
                os.path.join(etc, "va.cf"),
                "SELECT destination FROM virtual_aliases WHERE address = '%s' AND enabled = 1"),
            relay_domains=pg.map_file(
                os.path.join(etc, "rd.cf"),
                "SELECT domain FROM relay_domains WHERE domain = '%s' AND enabled = 1"),
            auth_passdb_maps=pg.map_file(
                os.path.join(etc, "passdb.cf"),
                "SELECT '{SHA1.HEX}' || password AS password, enabled = 1 AS active "
                "FROM vmailbox_users WHERE username = '%u' AND domain = '%d'",
                result_fields="passwd-file"),
            smtp_dns_servers="127.0.0.1:9")
        i.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.pg.destroy()

    def test_howto_tables(self):
        node = Node.__new__(Node)
        node.addr, node.inst = "127.0.0.1", self.inst
        self.assertEqual(node.rcpt("erin@example.test"), 250)
        self.assertEqual(node.rcpt("frank@example.test"), 550)     # enabled = 0
        self.assertEqual(node.rcpt("info@example.test"), 250)
        self.assertEqual(node.rcpt("x@backup.test"), 250)
        self.assertEqual(node.rcpt("x@old.test"), 554)
        node.send("info@example.test", "howto")
        self.assertTrue(wait_until(lambda: node.delivered("erin", "howto"), timeout=20),
                        self.inst.log())
        self.assertEqual(node.login("erin@example.test", "erin-pw"), 235)
        self.assertEqual(node.login("erin@example.test", "wrong"), 535)
        self.assertEqual(node.login("frank@example.test", "frank-pw"), 535)


if __name__ == "__main__":
    main()
