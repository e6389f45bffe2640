"""authd's users through lib/map (auth_passdb_maps): from PostgreSQL with conf/pgsql/schema.sql
and conf/pgsql/passdb.cf (columns password, active, allow_smtp, allow_imap, quota), and from a
Berkeley DB hash: table whose values are passwd-file fields. Real clients: smtplib AUTH on
submissions, imaplib LOGIN. A disabled user or service is refused; the database going away
fails logins temporarily (454 4.7.0, NO [UNAVAILABLE]) without counting towards lockout, and
logins work again when it is back."""
import imaplib
import os
import smtplib
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pgsql_helper import PG_DB, PG_PASSWORD, PG_USER, PgServer  # noqa: E402
from postern_test import Instance, main, wait_until  # noqa: E402

SOURCE = os.environ.get("POSTERN_SOURCE") or os.path.join(os.path.dirname(__file__), "..", "..")
CONF = os.path.join(os.path.abspath(SOURCE), "conf", "pgsql")
DOMAIN = "example.test"


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def install_map(pg, name, dest, **extra):
    """conf/pgsql/NAME.cf with the test server's connection; returns pgsql:DEST."""
    with open(os.path.join(CONF, name + ".cf")) as f:
        text = f.read()
    for marker, value in (("@PG_HOSTS@", "127.0.0.1:%d" % pg.port), ("@PG_USER@", PG_USER),
                          ("@PG_PASSWORD@", PG_PASSWORD), ("@PG_DBNAME@", PG_DB)):
        text = text.replace(marker, value)
    for k, v in extra.items():
        text += "%s = %s\n" % (k, v)
    with open(dest, "w") as f:
        f.write(text)
    os.chmod(dest, 0o600)
    return "pgsql:" + dest


def smtp_login(inst, user, password):
    """(code, text) of AUTH PLAIN on submissions (implicit TLS)."""
    with smtplib.SMTP_SSL("127.0.0.1", inst.port_base + 465, timeout=30,
                          context=tls_context()) as s:
        s.ehlo("client.test")
        try:
            return s.login(user, password)
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error
        except smtplib.SMTPResponseException as e:
            return e.smtp_code, e.smtp_error


def imap_login(inst, user, password):
    """"OK" or the NO text of LOGIN."""
    m = imaplib.IMAP4("127.0.0.1", inst.port_base + 143, timeout=30)
    try:
        m.login(user, password)
        m.logout()
        return "OK"
    except imaplib.IMAP4.error as e:
        return str(e)


class PgsqlPassdbTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("pgauth")
        cls.pg = pg = PgServer().start()
        with open(os.path.join(CONF, "schema.sql")) as f:
            pg.psql(f.read(), user=PG_USER)

        def pw(password):
            return i.postctl("pw", input=password + "\n").strip()
        pg.psql("""
            INSERT INTO domains (domain) VALUES ('example.test');
            INSERT INTO domains (domain, active) VALUES ('closed.test', false);
            INSERT INTO mailboxes (address, domain, password, maildir, quota, active,
                                   allow_imap, allow_smtp) VALUES
              ('alice@example.test', 'example.test', '%s', 'example.test/alice/', 1000000,
               true, true, true),
              ('off@example.test', 'example.test', '%s', 'example.test/off/', 0, false, true, true),
              ('noimap@example.test', 'example.test', '%s', 'example.test/noimap/', 0, true,
               false, true),
              ('nosmtp@example.test', 'example.test', '%s', 'example.test/nosmtp/', 0, true,
               true, false),
              ('bob@closed.test', 'closed.test', '%s', 'closed.test/bob/', 0, true, true, true);
            """ % (pw("alice-pw"), pw("off-pw"), pw("noimap-pw"), pw("nosmtp-pw"), pw("bob-pw")),
                user=PG_USER)
        etc = i.path("etc")
        i.set_main_cf(auth_passdb_maps=install_map(pg, "passdb", os.path.join(etc, "passdb.cf"),
                                                   connect_timeout="2", query_timeout="2",
                                                   retry_interval="1"),
                      virtual_mailbox_domains=install_map(pg, "domains",
                                                          os.path.join(etc, "domains.cf")),
                      virtual_mailbox_maps=install_map(pg, "mailboxes",
                                                       os.path.join(etc, "mailboxes.cf")),
                      auth_failure_limit="15", auth_failure_delay="0", auth_failure_delay_max="0")
        i.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.pg.destroy()

    def test_smtp_and_imap_logins(self):
        i = self.inst
        self.assertEqual(smtp_login(i, "alice@example.test", "alice-pw")[0], 235)
        self.assertEqual(smtp_login(i, "Alice@Example.Test", "alice-pw")[0], 235)
        self.assertEqual(imap_login(i, "alice@example.test", "alice-pw"), "OK")
        self.assertEqual(smtp_login(i, "alice@example.test", "wrong")[0], 535)
        self.assertEqual(smtp_login(i, "nobody@example.test", "x")[0], 535)
        self.assertEqual(smtp_login(i, "alice@example.test' OR '1'='1", "x")[0], 535)
        # disabled: the mailbox, or its whole domain
        self.assertEqual(smtp_login(i, "off@example.test", "off-pw")[0], 535)
        self.assertIn("AUTHENTICATIONFAILED", imap_login(i, "off@example.test", "off-pw"))
        self.assertEqual(smtp_login(i, "bob@closed.test", "bob-pw")[0], 535)
        # one service refused, the other allowed
        self.assertEqual(smtp_login(i, "noimap@example.test", "noimap-pw")[0], 235)
        self.assertIn("AUTHENTICATIONFAILED", imap_login(i, "noimap@example.test", "noimap-pw"))
        self.assertEqual(smtp_login(i, "nosmtp@example.test", "nosmtp-pw")[0], 535)
        self.assertEqual(imap_login(i, "nosmtp@example.test", "nosmtp-pw"), "OK")
        log = i.log()
        self.assertIn("reason=account disabled (nologin)", log)
        self.assertIn("reason=imap not allowed for this user (allow_imap=no)", log)

    def test_password_change_takes_effect_at_once(self):
        i = self.inst
        sql = "UPDATE mailboxes SET password = '%s' WHERE address = 'nosmtp@example.test'"
        self.pg.psql(sql % i.postctl("pw", input="changed-pw\n").strip(), user=PG_USER)
        try:
            self.assertEqual(imap_login(i, "nosmtp@example.test", "changed-pw"), "OK")
            self.assertIn("AUTHENTICATIONFAILED",
                          imap_login(i, "nosmtp@example.test", "nosmtp-pw"))
        finally:
            self.pg.psql(sql % i.postctl("pw", input="nosmtp-pw\n").strip(), user=PG_USER)

    def test_quota_reaches_imapd(self):
        m = imaplib.IMAP4("127.0.0.1", self.inst.port_base + 143, timeout=30)
        m.login("alice@example.test", "alice-pw")
        typ, data = m.getquotaroot("INBOX")
        m.logout()
        self.assertEqual(typ, "OK")
        self.assertIn(b"STORAGE 0 976", b" ".join(x for x in data[1] if isinstance(x, bytes)))

    def test_outage_is_temporary_and_not_a_lockout(self):
        i, pg = self.inst, self.pg
        pg.stop("immediate")
        try:
            # smtplib tries PLAIN then LOGIN: 17 attempts, more than auth_failure_limit = 15;
            # none of them counts
            for _ in range(8):
                code, text = smtp_login(i, "alice@example.test", "alice-pw")
                self.assertEqual(code, 454, text)
                self.assertIn(b"4.7.0", text)
            self.assertIn("[UNAVAILABLE]", imap_login(i, "alice@example.test", "alice-pw"))
        finally:
            pg.start()
        self.assertTrue(wait_until(
            lambda: smtp_login(i, "alice@example.test", "alice-pw")[0] == 235,
            timeout=20, interval=0.5), i.log())
        self.assertEqual(imap_login(i, "alice@example.test", "alice-pw"), "OK")
        self.assertIn("reason=temporary failure: auth_passdb_maps:", i.log())
        self.assertNotIn("lockout:", i.log())


class HashPassdbTest(unittest.TestCase):
    """auth_passdb_maps = hash:...: a Berkeley DB table of passwd-file fields (the instance's
    own database files, no passwd-file)."""

    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("hashauth")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "carol@" + DOMAIN, "--password-stdin", input="ignored-pw\n")
        hashed = i.postctl("pw", input="carol-pw\n").strip()
        path = i.path("etc", "passdb")
        with open(path, "w") as f:
            f.write("carol@example.test %s::::::allow_imap=no\n" % hashed)
            f.write("dan@example.test {PLAIN}dan-pw\n")
        i.postctl("map", "hash:" + path)
        i.set_main_cf(auth_passdb_maps="hash:" + path)
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_logins(self):
        i = self.inst
        self.assertEqual(smtp_login(i, "carol@example.test", "carol-pw")[0], 235)
        self.assertEqual(smtp_login(i, "carol@example.test", "ignored-pw")[0], 535)
        self.assertIn("AUTHENTICATIONFAILED", imap_login(i, "carol@example.test", "carol-pw"))
        self.assertEqual(smtp_login(i, "dan@example.test", "dan-pw")[0], 235)
        self.assertEqual(smtp_login(i, "dan@example.test", "dan-pwx")[0], 535)
        self.assertIn("users from auth_passdb_maps = hash:", i.log())

    def test_table_replaced_while_running(self):
        i = self.inst
        path = i.path("etc", "passdb")
        with open(path, "a") as f:
            f.write("ivy@example.test {PLAIN}ivy-pw\n")
        i.postctl("map", "hash:" + path)
        self.assertTrue(wait_until(lambda: smtp_login(i, "ivy@example.test", "ivy-pw")[0] == 235,
                                   timeout=15, interval=0.5), i.log())


if __name__ == "__main__":
    main()
