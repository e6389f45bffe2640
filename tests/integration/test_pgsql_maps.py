"""pgsql: maps on a real PostgreSQL server (tests/pgsql_helper.py starts one in a temp dir):
every map use of main.cf (virtual_mailbox_domains, virtual_mailbox_maps, virtual_alias_maps,
relay_domains, transport_maps, check_sender_access) through pgsql: files, with several hosts
tried in order (a closed TCP port first; the unix socket inside smtpd's chroot, then outside; IPv6), %s %u %d %%,
result_format, expansion_limit and domain. Keys that look like SQL, quotes, backslashes,
control bytes or invalid UTF-8 are keys that are not found. SMTP sessions accept and refuse
recipients by what the database holds."""
import glob
import os
import re
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pgsql_helper import PgServer, free_port  # noqa: E402
from postern_test import Instance, main, wait_until  # noqa: E402

DOMAIN = "example.test"

SCHEMA = """
CREATE TABLE domains (domain text PRIMARY KEY, class text NOT NULL, active boolean NOT NULL);
CREATE TABLE mailboxes (local_part text, domain text, active boolean NOT NULL,
                        PRIMARY KEY (local_part, domain));
CREATE TABLE aliases (address text, goto text);
CREATE TABLE transports (domain text PRIMARY KEY, transport text);
CREATE TABLE access (sender text PRIMARY KEY, action text);
INSERT INTO domains VALUES ('example.test', 'mailbox', true), ('closed.test', 'mailbox', false),
    ('relay.test', 'relay', true), ('backup.test', 'relay-backup', true);
INSERT INTO mailboxes VALUES ('alice', 'example.test', true), ('dave', 'example.test', true),
    ('carol', 'example.test', false), ('alice', 'other.test', true),
    ('x''y', 'example.test', true);
INSERT INTO aliases VALUES ('sales@example.test', 'alice@example.test'),
    ('sales@example.test', 'dave@example.test'), ('sales@example.test', NULL),
    ('sales@example.test', '');
INSERT INTO aliases SELECT 'many@example.test', 'u' || n || '@example.test'
    FROM generate_series(1, 5) n;
INSERT INTO transports VALUES ('backup.test', 'error:5.7.1 closed by the database');
INSERT INTO access VALUES ('spammer@bad.test', 'REJECT no mail from you (pgsql)');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO postern;
"""


class PgsqlMapsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("pgmaps")
        # smtpd and qmgr (the users of virtual_mailbox_domains) run chrooted in the queue
        # directory: the server also puts a socket there, and the map names it as seen inside
        # the chroot and (for postctl) from outside.
        sockdir = i.path("queue", "pgsql")
        cls.pg = pg = PgServer(socket_dirs=[sockdir]).start()
        pg.psql(SCHEMA)
        etc = i.path("etc")
        dead = free_port()
        cls.maps = {
            "domains": pg.map_file(
                os.path.join(etc, "pg-domains.cf"),
                "SELECT domain FROM domains WHERE domain='%s' AND class='mailbox' AND active",
                hosts="unix:/pgsql/.s.PGSQL.%d unix:%s/.s.PGSQL.%d" % (pg.port, sockdir, pg.port)),
            "mailboxes": pg.map_file(
                os.path.join(etc, "pg-mailboxes.cf"),
                "SELECT local_part || '@' || domain FROM mailboxes WHERE local_part='%u' "
                "AND domain='%d' AND active",
                hosts="127.0.0.1:%d 127.0.0.1:%d" % (dead, pg.port),
                result_format="%d/%u/", domain="example.test closed.test"),
            "aliases": pg.map_file(
                os.path.join(etc, "pg-aliases.cf"),
                "SELECT goto FROM aliases WHERE address='%s'",
                hosts="[::1]:%d" % pg.port, expansion_limit="3"),
            "relay": pg.map_file(
                os.path.join(etc, "pg-relay.cf"),
                "SELECT domain FROM domains WHERE domain = '%s' AND class LIKE 'rel%%'"),
            "transport": pg.map_file(
                os.path.join(etc, "pg-transport.cf"),
                "SELECT transport FROM transports WHERE domain='%s'"),
            "access": pg.map_file(
                os.path.join(etc, "pg-access.cf"),
                "SELECT action FROM access WHERE sender='%s'"),
        }
        # 127.0.0.1 is not in mynetworks: relaying is decided by relay_domains alone.
        i.set_main_cf(mynetworks="192.0.2.0/24",
                      virtual_mailbox_domains=cls.maps["domains"],
                      virtual_mailbox_maps=cls.maps["mailboxes"],
                      virtual_alias_maps=cls.maps["aliases"],
                      relay_domains=cls.maps["relay"],
                      transport_maps=cls.maps["transport"],
                      smtpd_sender_restrictions="check_sender_access " + cls.maps["access"],
                      smtp_dns_servers="127.0.0.1:9",
                      minimal_backoff_time="1s", maximal_backoff_time="2s",
                      queue_run_delay="1s")
        i.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.pg.destroy()

    def query(self, key, name):
        """(exit code, stdout, stderr) of postctl map -q KEY on one map; key may be bytes."""
        cmd = self.inst.command("-c", self.inst.config_dir, "map", "-q", key, self.maps[name])
        cmd = [c if isinstance(c, bytes) else c.encode() for c in cmd]
        r = subprocess.run(cmd, capture_output=True, timeout=30)
        return r.returncode, r.stdout.decode(errors="replace").strip(), \
            r.stderr.decode(errors="replace").strip()

    def test_lookups(self):
        self.assertEqual(self.query("example.test", "domains")[:2], (0, "example.test"))
        self.assertNotEqual(self.query("closed.test", "domains")[0], 0)    # inactive
        self.assertNotEqual(self.query("relay.test", "domains")[0], 0)     # other class
        # %u %d into the query, result_format %d/%u/ of the value; the hosts before the
        # socket (a closed TCP port) are skipped
        self.assertEqual(self.query("alice@example.test", "mailboxes")[:2],
                         (0, "example.test/alice/"))
        self.assertEqual(self.query("x'y@example.test", "mailboxes")[:2],
                         (0, "example.test/x'y/"))
        self.assertNotEqual(self.query("carol@example.test", "mailboxes")[0], 0)
        # domain = example.test closed.test: other.test is never asked, nor a bare name
        self.assertEqual(self.query("alice@other.test", "mailboxes")[:2], (1, ""))
        self.assertEqual(self.query("alice", "mailboxes")[:2], (1, ""))
        # several rows: joined with commas, NULL and empty fields skipped
        code, out, _ = self.query("sales@example.test", "aliases")
        self.assertEqual((code, sorted(out.split(","))),
                         (0, ["alice@example.test", "dave@example.test"]))
        # more than expansion_limit = 3 results: a temporary failure, said so
        code, out, err = self.query("many@example.test", "aliases")
        self.assertNotEqual(code, 0)
        self.assertIn("expansion_limit", err)
        # %% is a literal % (LIKE 'rel%')
        self.assertEqual(self.query("relay.test", "relay")[:2], (0, "relay.test"))
        self.assertEqual(self.query("backup.test", "relay")[:2], (0, "backup.test"))
        self.assertNotEqual(self.query("example.test", "relay")[0], 0)

    def test_hostile_keys(self):
        keys = ["x'; DROP TABLE mailboxes; --@example.test", "' OR '1'='1",
                "alice@example.test' OR 'a'='a", "\\'@example.test", "al\\ice@example.test",
                "%s@example.test", "%%", "$1", "alice@example.test\x01", "\x01\x7f",
                b"alice\xff@example.test", b"\xc0\xaf@example.test", "a" * 5000,
                "alice@example.test\nx", "rel%"]
        for key in keys:
            for name in ("mailboxes", "aliases", "relay", "domains"):
                code, out, err = self.query(key, name)
                self.assertEqual((code, out, err), (1, "", ""), "%r in %s" % (key, name))
        self.assertEqual(self.pg.psql("SELECT count(*) FROM mailboxes").strip(), "5")
        self.assertEqual(self.query("alice@example.test", "mailboxes")[0], 0)

    def test_smtp_recipients(self):
        i = self.inst
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            self.assertEqual(s.mail("sender@client.test")[0], 250)
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)
            self.assertEqual(s.rcpt("sales@example.test")[0], 250)
            self.assertEqual(s.rcpt("someone@relay.test")[0], 250)
            self.assertEqual(s.rcpt("someone@backup.test")[0], 250)
            for rcpt in ("bob@example.test", "carol@example.test",
                         '"x\'; DROP TABLE mailboxes; --"@example.test',
                         '"\\\\\'"@example.test'):
                code, text = s.rcpt(rcpt)
                self.assertEqual(code, 550, (rcpt, text))
                self.assertIn(b"5.1.1", text)
            # unknown domain, not in relay_domains, client not in mynetworks
            code, text = s.rcpt("x@nowhere.test")
            self.assertEqual(code, 554, text)
            # more aliases than expansion_limit: try again later, never 550
            code, text = s.rcpt("many@example.test")
            self.assertEqual(code, 451, text)
            self.assertIn(b"4.3.0", text)
            code, _ = s.data(b"Subject: pgsql routed\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM mailboxes").strip(), "5")

        def read(path):
            with open(path, errors="replace") as f:
                return f.read()

        def mailbox(user):
            return [p for p in glob.glob(i.path("mail", DOMAIN, user, "new", "*"))
                    if "Subject: pgsql routed" in read(p)]
        # alice (as herself and through sales@: once, duplicates go) and dave through the alias
        self.assertTrue(wait_until(lambda: len(mailbox("alice")) == 1 and len(mailbox("dave")) == 1,
                                   timeout=20), i.log())
        # transport_maps from the database: backup.test is an error: transport
        self.assertTrue(wait_until(lambda: re.search(
            r"to=<someone@backup.test>.*dsn=5\.7\.1, status=bounced \(closed by the database\)",
            i.log()), timeout=20), i.log())

    def test_sender_access(self):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            code, text = s.mail("spammer@bad.test")
            if code == 250:             # restrictions may be delayed to RCPT
                code, text = s.rcpt("alice@example.test")
            self.assertEqual(code, 554, text)
            self.assertIn(b"no mail from you (pgsql)", text)
            s.rset()
            self.assertEqual(s.mail("fine@good.test")[0], 250)
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)


if __name__ == "__main__":
    main()
