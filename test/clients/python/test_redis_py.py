"""redis-py against throttledb: run by test/clients/clients_test.go with
/usr/bin/python3 and Debian's python3-redis.

Environment (set by the Go test):
  THROTTLEDB_ADDR      host:port of a single node that requires a password
  THROTTLEDB_PASSWORD  that password
  THROTTLEDB_CLUSTER   comma-separated host:port of a 3-node cluster, no password
"""

import os
import time
import unittest
import uuid

import redis

from throttled import throttled

INTERVAL = 60000  # long: no check depends on how fast the test runs


def host_port(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


ADDR = os.environ.get("THROTTLEDB_ADDR", "")
PASSWORD = os.environ.get("THROTTLEDB_PASSWORD", "")
CLUSTER = [a for a in os.environ.get("THROTTLEDB_CLUSTER", "").split(",") if a]
if not (ADDR and PASSWORD and len(CLUSTER) == 3):
    raise SystemExit("THROTTLEDB_ADDR, THROTTLEDB_PASSWORD and THROTTLEDB_CLUSTER are not set; run `go test ./test/clients`")


def key(name):
    return "%s:%s" % (name, uuid.uuid4())


def single(**kw):
    host, port = host_port(ADDR)
    return redis.Redis(host=host, port=port, password=PASSWORD, **kw)


def check_shape(test, reply):
    test.assertIsInstance(reply, list)
    test.assertEqual(len(reply), 5, reply)
    for v in reply:
        test.assertIsInstance(v, int, reply)
    return reply


class SingleNode(unittest.TestCase):
    def setUp(self):
        self.r = single()
        self.addCleanup(self.r.close)

    def test_defaults_and_password(self):
        self.assertTrue(self.r.ping())
        g = check_shape(self, self.r.execute_command("THROTTLE.ACQUIRE", key("py"), INTERVAL, 2))
        self.assertEqual(g[0:2], [1, 0])
        self.assertEqual(g[4], 0)
        host, port = host_port(ADDR)
        anon = redis.Redis(host=host, port=port)
        self.addCleanup(anon.close)
        with self.assertRaises(redis.AuthenticationError):
            anon.ping()
        wrong = redis.Redis(host=host, port=port, password="not-it")
        self.addCleanup(wrong.close)
        # redis-py 4.3 raises WRONGPASS as a plain ResponseError, as with Redis.
        with self.assertRaisesRegex(redis.ResponseError, "^WRONGPASS invalid username-password pair"):
            wrong.ping()

    def test_reserve_deny_reset(self):
        k = key("py-deny")
        now = self.r.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 1)
        later = self.r.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 1)
        denied = self.r.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 1)
        self.assertEqual(now[0], 1)
        self.assertEqual((later[0], later[2] - now[2], later[4]), (1, INTERVAL, 1))
        self.assertEqual((denied[0], denied[2], denied[3]), (0, -1, -1))
        self.assertGreater(denied[1], 0)
        peek = self.r.execute_command("THROTTLE.PEEK", k, INTERVAL, 1)
        self.assertEqual((peek[0], peek[2], peek[3]), (0, -1, -1))
        self.assertEqual(self.r.execute_command("THROTTLE.RESET", k), 1)

    def test_errors(self):
        with self.assertRaisesRegex(redis.ResponseError, "value is not an integer or out of range"):
            self.r.execute_command("THROTTLE.ACQUIRE", key("py"), "soon", 1)
        with self.assertRaisesRegex(redis.ResponseError, "wrong number of arguments for 'throttle.acquire' command"):
            self.r.execute_command("THROTTLE.ACQUIRE", key("py"), 1)

    def test_pipeline(self):
        k = key("py-pipe")
        p = self.r.pipeline(transaction=False)
        for _ in range(4):
            p.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 2)
        p.execute_command("THROTTLE.ACQUIRE", k, "x", 2)
        res = p.execute(raise_on_error=False)
        self.assertEqual([r[0] for r in res[:4]], [1, 1, 1, 0])
        self.assertEqual([r[4] for r in res[:3]], [0, 1, 2])
        self.assertIsInstance(res[4], redis.ResponseError)

    def test_multi_exec(self):
        k = key("py-tx")
        p = self.r.pipeline(transaction=True)
        p.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 5)
        p.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 5)
        p.execute_command("THROTTLE.RESET", k)
        a, b, n = p.execute()
        self.assertEqual((a[0], b[0], b[2] - a[2], n), (1, 1, INTERVAL, 1))
        bad = self.r.pipeline(transaction=True)
        bad.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 5)
        bad.ping()  # not allowed in a transaction: EXEC aborts
        with self.assertRaises(redis.ResponseError):
            bad.execute()

    def test_client_info_and_list(self):
        self.r.client_setname("py-tests")
        info = self.r.client_info()
        self.assertEqual(info["name"], "py-tests")
        self.assertEqual(info["cmd"], "client|info")
        self.assertEqual(info["id"], self.r.client_id())
        for field in ("psub", "sub", "ssub", "multi", "qbuf", "obl", "tot-mem", "resp", "lib-name"):
            self.assertIn(field, info)
        other = single(client_name="py-other")
        self.addCleanup(other.close)
        other.ping()
        clients = self.r.client_list()
        names = {c["name"] for c in clients}
        self.assertTrue({"py-tests", "py-other"} <= names, names)
        oid = other.client_id()
        self.assertEqual([c["name"] for c in self.r.client_list(client_id=[str(oid)])], ["py-other"])
        # CLIENT KILL ID closes it; redis-py reconnects on the next command.
        self.assertEqual(self.r.client_kill_filter(_id=oid), 1)
        self.assertTrue(other.ping())
        self.assertNotEqual(other.client_id(), oid)

    def test_info_and_config(self):
        info = self.r.info()
        self.assertIn("used_memory", info)
        self.assertEqual(info["blocked_clients"], 0)
        self.assertEqual(self.r.info("replication")["role"], "master")
        self.assertIn("cmdstat_ping", self.r.info("commandstats"))
        self.assertEqual(self.r.config_get("appendonly"), {"appendonly": "yes"})
        self.assertNotIn("requirepass", self.r.config_get("*"))

    def test_throttled_decorator(self):
        # The README's example: three calls with max_pending 1 and a 200 ms
        # interval. The first goes now, the second is reserved 200 ms
        # later; the third is denied until a slot frees up, then retries.
        k = key("py-decorator")
        calls = []

        @throttled(self.r, k, interval_ms=200, max_pending=1)
        def work(i):
            calls.append((i, time.monotonic()))
            return i * 2

        start = time.monotonic()
        self.assertEqual([work(i) for i in range(3)], [0, 2, 4])
        self.assertEqual([i for i, _ in calls], [0, 1, 2])
        # The throttle's promise: slots 200 ms apart, so the third call is
        # at least two intervals after the first acquire (never earlier).
        self.assertGreaterEqual(calls[2][1] - start, 0.4 - 0.11)  # less the default slop (interval/2, capped)
        peek = self.r.execute_command("THROTTLE.PEEK", k, 200, 1)
        self.assertEqual(len(peek), 5)


class Cluster(unittest.TestCase):
    def clients(self):
        out = []
        for addr in CLUSTER:
            host, port = host_port(addr)
            c = redis.Redis(host=host, port=port)
            self.addCleanup(c.close)
            out.append(c)
        return out

    def test_every_node_and_followers(self):
        cs = self.clients()
        k = key("py-cluster")
        replies = [c.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 5) for c in cs]
        self.assertEqual([r[0] for r in replies], [1, 1, 1])
        self.assertEqual([r[4] for r in replies], [0, 1, 2])  # one throttle, whichever node
        roles = [c.info("replication")["role"] for c in cs]
        self.assertEqual(sorted(roles), ["master", "slave", "slave"])

    def test_follower_pipeline_and_transaction(self):
        cs = self.clients()
        follower = next(c for c in cs if c.info("replication")["role"] == "slave")
        k = key("py-follower")
        p = follower.pipeline(transaction=False)
        for _ in range(3):
            p.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 5)
        self.assertEqual([r[4] for r in p.execute()], [0, 1, 2])
        tx = follower.pipeline(transaction=True)
        tx.execute_command("THROTTLE.ACQUIRE", k, INTERVAL, 5)
        tx.execute_command("THROTTLE.RESET", k)
        a, n = tx.execute()
        self.assertEqual((a[0], a[4], n), (1, 3, 1))
        info = follower.client_info()
        self.assertEqual(info["cmd"], "client|info")
        self.assertTrue(any(int(c["id"]) == info["id"] for c in follower.client_list()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
