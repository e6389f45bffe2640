"""pgsql: maps while the database goes away: RCPT gets 451 4.3.0 (never 550), mail that was
accepted defers (never bounces), and service resumes by itself when the server is back on
the same port, with nothing accepted lost. A server that hangs (SIGSTOP) costs a lookup at most
connect_timeout / query_timeout, then a temporary failure too."""
import glob
import os
import re
import signal
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pgsql_helper import PgServer  # noqa: E402
from postern_test import Instance, children_of, main, wait_until  # noqa: E402

DOMAIN = "example.test"

SCHEMA = """
CREATE TABLE domains (domain text PRIMARY KEY);
CREATE TABLE mailboxes (address text PRIMARY KEY, maildir text NOT NULL);
CREATE TABLE aliases (address text, goto text);
INSERT INTO aliases VALUES ('team@example.test', 'dave@example.test');
INSERT INTO domains VALUES ('example.test');
INSERT INTO mailboxes VALUES ('alice@example.test', 'example.test/alice/'),
                             ('dave@example.test', 'example.test/dave/');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO postern;
"""

TIMEOUTS = dict(connect_timeout="2", query_timeout="2", retry_interval="1")


class PgsqlOutageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = i = Instance("pgout")
        cls.pg = pg = PgServer().start()
        pg.psql(SCHEMA)
        etc = i.path("etc")
        i.set_main_cf(
            mynetworks="127.0.0.0/8",
            virtual_mailbox_domains=pg.map_file(os.path.join(etc, "pg-domains.cf"),
                                                "SELECT 'OK' FROM domains WHERE domain='%s'",
                                                **TIMEOUTS),
            virtual_mailbox_maps=pg.map_file(os.path.join(etc, "pg-mailboxes.cf"),
                                             "SELECT maildir FROM mailboxes WHERE address='%s'",
                                             **TIMEOUTS),
            virtual_alias_maps=pg.map_file(os.path.join(etc, "pg-aliases.cf"),
                                           "SELECT goto FROM aliases WHERE address='%s'",
                                           **TIMEOUTS),
            smtp_dns_servers="127.0.0.1:9",
            minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s")
        i.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.pg.destroy()

    def delivered(self, user, marker):
        out = []
        for path in glob.glob(self.inst.path("mail", DOMAIN, user, "new", "*")):
            with open(path, errors="replace") as f:
                if marker in f.read():
                    out.append(path)
        return out

    def rcpt_code(self, rcpt):
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            s.mail("sender@client.test")
            return s.rcpt(rcpt)

    def assert_never_bounced(self):
        log = self.inst.log()
        self.assertNotRegex(log, r"to=<[^>]*@example\.test>.*status=bounced", log)
        self.assertNotIn("sender non-delivery notification", log)

    def test_restart_during_session(self):
        i, pg = self.inst, self.pg
        self.assertEqual(self.rcpt_code("alice@example.test")[0], 250)
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.ehlo("client.test")
            self.assertEqual(s.mail("sender@client.test")[0], 250)
            self.assertEqual(s.rcpt("alice@example.test")[0], 250)
            self.assertEqual(s.rcpt("team@example.test")[0], 250)
            pg.stop("immediate")        # connections break without a goodbye
            for rcpt in ("dave@example.test", "nobody@example.test"):
                code, text = s.rcpt(rcpt)
                self.assertEqual(code, 451, (rcpt, text))
                self.assertIn(b"4.3.0", text)
            # what was accepted before is taken and kept
            code, _ = s.data(b"Subject: outage one\r\n\r\nbefore the restart\r\n")
            self.assertEqual(code, 250)
        # qmgr's alias expansion (and delivery's virtual_mailbox_maps) need the database
        # too: the message defers, never bounces
        self.assertTrue(wait_until(lambda: re.search(
            r"to=<(alice|team)@example\.test>.*dsn=4\.3\.0, status=deferred", i.log()),
            timeout=20), i.log())
        self.assertEqual(self.delivered("alice", "outage one"), [])
        self.assertEqual(self.rcpt_code("dave@example.test")[0], 451)
        pg.start()                      # same port, same data
        # service comes back by itself: new sessions are accepted, the deferred mail goes
        self.assertTrue(wait_until(lambda: self.rcpt_code("dave@example.test")[0] == 250,
                                   timeout=20, interval=0.5), i.log())
        self.assertTrue(wait_until(lambda: self.delivered("alice", "outage one")
                                   and self.delivered("dave", "outage one"), timeout=30),
                        i.log())
        self.assertEqual(self.rcpt_code("nobody@example.test")[0], 550)
        self.assert_never_bounced()

    def test_hung_server(self):
        i, pg = self.inst, self.pg
        self.assertEqual(self.rcpt_code("dave@example.test")[0], 250)
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        stopped = [postmaster] + children_of(postmaster)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
                s.ehlo("client.test")
                s.mail("sender@client.test")
                # the open connection's backend does not answer: query_timeout, then 451;
                # a new connection gets no startup reply: connect_timeout, then 451
                for rcpt in ("dave@example.test", "alice@example.test"):
                    code, text = s.rcpt(rcpt)
                    self.assertEqual(code, 451, (rcpt, text))
                    self.assertIn(b"4.3.0", text)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        self.assertTrue(wait_until(lambda: self.rcpt_code("dave@example.test")[0] == 250,
                                   timeout=20, interval=0.5), i.log())
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("sender@client.test", ["dave@example.test"],
                       b"Subject: after the hang\r\n\r\nbody\r\n")
        self.assertTrue(wait_until(lambda: self.delivered("dave", "after the hang"), timeout=30),
                        i.log())
        self.assertIn("no answer within query_timeout", i.log())
        self.assert_never_bounced()


if __name__ == "__main__":
    main()
