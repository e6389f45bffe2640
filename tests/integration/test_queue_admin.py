"""postctl queue show / delete / hold / release / flush on a running instance: mail for a
foreign domain from mynetworks waits in the queue (smtp_dns_servers points at a port where no
name server answers, so the smtp agent defers it with a DNS failure), so it is what the admin
commands act on, while qmgr keeps running and delivering local mail."""
import glob
import json
import os
import smtplib
import time
import unittest

from postern_test import Instance, main, wait_until

DOMAIN = "example.test"


class QueueAdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = Instance("queueadmin")
        i = cls.inst
        i.set_main_cf(mynetworks="127.0.0.1/32", smtp_dns_servers="127.0.0.1:9", minimal_backoff_time="1s",
                      maximal_backoff_time="2s", queue_run_delay="1s")
        i.postctl("domain", "add", DOMAIN)
        i.postctl("user", "add", "alice@" + DOMAIN, "--password-stdin", input="alice-pw\n")
        i.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def queue_foreign(self, n, tag):
        """n messages to a foreign domain; their queue IDs once all are in the queue."""
        with smtplib.SMTP("127.0.0.1", self.inst.smtp_port, timeout=30) as s:
            for k in range(n):
                s.sendmail("alice@" + DOMAIN, ["%s%d@foreign.test" % (tag, k)],
                           b"Subject: queued\r\n\r\nwaits\r\n")
        def ids():
            listing = json.loads(self.inst.postctl("queue", "list", "--json"))
            return [m["queue_id"] for m in listing
                    if any(r["address"].startswith(tag) for r in m["recipients"])]
        self.assertTrue(wait_until(lambda: len(ids()) == n, timeout=15), self.inst.postctl("queue", "list"))
        return ids()

    def where(self, qid):
        return [q for q in ("incoming", "active", "deferred", "hold")
                if os.path.exists(self.inst.path("queue", q, qid))]

    def test_show(self):
        i = self.inst
        (qid,) = self.queue_foreign(1, "show")
        self.assertTrue(wait_until(lambda: self.where(qid) == ["deferred"], timeout=15), self.where(qid))
        out = i.postctl("queue", "show", qid)
        self.assertIn("queue_id: %s\n" % qid, out)
        self.assertIn("queue: deferred\n", out)
        self.assertIn("sender: alice@%s\n" % DOMAIN, out)
        self.assertIn("client_address: 127.0.0.1\n", out)
        self.assertRegex(out, r"recipient: show0@foreign\.test \(deferred\): .+\n")
        self.assertRegex(out, r"attempts: [1-9]")
        self.assertIn("next_attempt: ", out)
        # bad and unknown IDs
        r = i.postctl_raw("queue", "show", "../../etc/passwd")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = i.postctl_raw("queue", "show", "0123456789ABCDEF01")
        self.assertNotEqual(r.returncode, 0)
        i.postctl("queue", "delete", qid)

    def test_hold_release_flush_delete(self):
        i = self.inst
        (qid,) = self.queue_foreign(1, "hold")
        self.assertTrue(wait_until(lambda: self.where(qid) == ["deferred"], timeout=15), self.where(qid))
        self.assertIn("Placed on hold: 1 message", i.postctl("queue", "hold", qid))
        self.assertEqual(self.where(qid), ["hold"])
        listing = i.postctl("queue", "list")
        self.assertIn(qid + "!", listing)
        # qmgr leaves held mail alone: still there after several queue runs
        attempts = int(i.postctl("queue", "show", qid).split("attempts: ")[1].split()[0])
        flushes = i.log().count("flush requested")
        i.postctl("queue", "flush")
        self.assertTrue(wait_until(lambda: i.log().count("flush requested") > flushes, timeout=10))
        time.sleep(2.5)                 # queue_run_delay is 1s: a few runs go by
        self.assertEqual(self.where(qid), ["hold"])
        self.assertEqual(int(i.postctl("queue", "show", qid).split("attempts: ")[1].split()[0]), attempts)
        # release: back to deferred/ and tried again at once
        self.assertIn("Released from hold: 1 message", i.postctl("queue", "release", qid))
        self.assertTrue(wait_until(
            lambda: int(i.postctl("queue", "show", qid).split("attempts: ")[1].split()[0]) > attempts,
            timeout=15), i.postctl("queue", "show", qid))
        self.assertNotIn("hold", self.where(qid))
        # releasing what is not held fails, deleting removes it
        r = i.postctl_raw("queue", "release", qid)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertTrue(wait_until(lambda: self.where(qid) == ["deferred"], timeout=15))
        self.assertIn("Deleted: 1 message", i.postctl("queue", "delete", qid))
        self.assertEqual(self.where(qid), [])
        self.assertNotIn(qid, i.postctl("queue", "list"))

    def test_delete_all_and_local_mail_still_flows(self):
        i = self.inst
        ids = self.queue_foreign(3, "bulk")
        self.assertTrue(wait_until(lambda: all(self.where(q) == ["deferred"] for q in ids), timeout=15))
        i.postctl("queue", "hold", ids[0])
        # --deferred leaves the held one
        out = i.postctl("queue", "delete", "ALL", "--deferred")
        self.assertIn("Deleted: 2 messages", out)
        self.assertEqual(self.where(ids[0]), ["hold"])
        self.assertEqual(self.where(ids[1]) + self.where(ids[2]), [])
        self.assertIn("Deleted: 1 message", i.postctl("queue", "delete", "ALL"))
        self.assertIn("Mail queue is empty", i.postctl("queue", "list"))
        # usage errors
        for args in (("delete",), ("delete", "ALL", ids[0]), ("delete", ids[0], "--deferred"),
                     ("hold", "x/y"), ("flush", "extra")):
            r = i.postctl_raw("queue", *args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
        # qmgr noticed nothing wrong: local mail is delivered, no daemon complained
        with smtplib.SMTP("127.0.0.1", i.smtp_port, timeout=30) as s:
            s.sendmail("x@outside.test", ["alice@" + DOMAIN], b"Subject: local\r\n\r\nhi\r\n")
        self.assertTrue(wait_until(lambda: glob.glob(i.path("mail", DOMAIN, "alice", "new", "*")),
                                   timeout=15), i.log()[-3000:])
        self.assertNotIn("panic", i.log())


if __name__ == "__main__":
    main()
