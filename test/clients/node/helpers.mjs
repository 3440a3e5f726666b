// Shared by the *.test.mjs files: where the servers are, unique keys, and
// checks on THROTTLE.ACQUIRE's five-integer reply
// [granted, wait_ms, valid_at, expires_at, pending].
//
// test/clients/clients_test.go starts the servers and sets:
//   THROTTLEDB_ADDR      host:port of a single node that requires a password
//   THROTTLEDB_PASSWORD  that password
//   THROTTLEDB_CLUSTER   comma-separated host:port of a 3-node cluster, no password
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

function hostPort(addr) {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}

export const env = {
  addr: process.env.THROTTLEDB_ADDR ?? '',
  password: process.env.THROTTLEDB_PASSWORD ?? '',
  cluster: (process.env.THROTTLEDB_CLUSTER ?? '').split(',').filter(Boolean),
};

// skip is the node:test skip option: a reason when the servers are not
// given (the Go test counts skipped tests as a failure).
export const skip =
  env.addr && env.password && env.cluster.length === 3
    ? false
    : 'THROTTLEDB_ADDR, THROTTLEDB_PASSWORD and THROTTLEDB_CLUSTER (3 addresses) are not set; run `go test ./test/clients`';

export const single = env.addr ? hostPort(env.addr) : null;
export const clusterNodes = env.cluster.map(hostPort);

// A long interval: no check depends on how fast the test runs.
export const INTERVAL = 60000;

// key returns a key no other test (or earlier run against the same server)
// uses.
export function key(name) {
  return `${name}:${randomUUID()}`;
}

// acquireArgs builds the argument list for THROTTLE.ACQUIRE (or another
// command with the same arguments, such as THROTTLE.PEEK).
export function acquireArgs(k, max, interval = INTERVAL, cmd = 'THROTTLE.ACQUIRE') {
  return [cmd, k, String(interval), String(max)];
}

// checkShape asserts a reply is five integers and returns it as an object.
export function checkShape(r) {
  assert.ok(Array.isArray(r), `reply is not an array: ${JSON.stringify(r)}`);
  assert.equal(r.length, 5, `reply has ${r.length} elements: ${JSON.stringify(r)}`);
  for (const v of r) assert.ok(Number.isInteger(v), `not an integer in ${JSON.stringify(r)}`);
  const [granted, waitMs, validAt, expiresAt, pending] = r;
  return { granted, waitMs, validAt, expiresAt, pending };
}

// grantedNow asserts the first call on a fresh key: a slot now.
export function grantedNow(r) {
  const g = checkShape(r);
  assert.equal(g.granted, 1, `not granted: ${JSON.stringify(r)}`);
  assert.equal(g.waitMs, 0, `not now: ${JSON.stringify(r)}`);
  assert.equal(g.pending, 0);
  assert.ok(g.expiresAt > g.validAt, `expires_at <= valid_at: ${JSON.stringify(r)}`);
  // valid_at is "now" in cluster time: this machine's clock, within reason.
  assert.ok(Math.abs(g.validAt - Date.now()) < 60000, `valid_at far from now: ${JSON.stringify(r)}`);
  return g;
}

// reserved asserts a future slot exactly n intervals after first.
export function reserved(r, first, n, interval = INTERVAL) {
  const g = checkShape(r);
  assert.equal(g.granted, 1, `not granted: ${JSON.stringify(r)}`);
  assert.equal(g.validAt - first.validAt, n * interval, `slot ${n} not ${n} intervals after the first: ${JSON.stringify(r)}`);
  assert.equal(g.expiresAt - g.validAt, first.expiresAt - first.validAt, 'slop changed');
  assert.ok(g.waitMs > (n - 1) * interval && g.waitMs <= n * interval, `wait_ms ${g.waitMs} for slot ${n}`);
  assert.equal(g.pending, n);
  return g;
}

// denied asserts a refusal with pending slots still queued.
export function denied(r, pending) {
  const g = checkShape(r);
  assert.equal(g.granted, 0, `granted: ${JSON.stringify(r)}`);
  assert.ok(g.waitMs > 0, `denied with wait_ms ${g.waitMs}`);
  assert.equal(g.validAt, -1);
  assert.equal(g.expiresAt, -1);
  assert.equal(g.pending, pending);
  return g;
}

// spaced asserts replies (in the order the commands were sent) hold
// consecutive slots of one fresh key: now, +interval, +2 intervals, ...
export function spaced(replies, interval = INTERVAL) {
  const first = grantedNow(replies[0]);
  replies.slice(1).forEach((r, i) => reserved(r, first, i + 1, interval));
}

// Redis's exact error texts.
export const ERR = {
  arity: "ERR wrong number of arguments for 'throttle.acquire' command",
  notInteger: 'ERR value is not an integer or out of range',
  noAuth: 'NOAUTH Authentication required.',
  // Redis's reply to HELLO before authenticating.
  helloNoAuth: 'NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time',
  wrongPass: 'WRONGPASS invalid username-password pair or user is disabled.',
};
