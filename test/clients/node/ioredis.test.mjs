// Proves that ioredis works with throttledb as a plain (non-cluster) Redis
// client: it connects with a password or without one, its connect-time
// handshake (HELLO 3 AUTH, so the connection speaks RESP3, or AUTH with
// protocol: 2; CLIENT SETINFO; CLIENT SETNAME; the INFO ready check)
// succeeds, THROTTLE.ACQUIRE works through redis.call() and pipeline(), errors
// arrive as ReplyError with Redis's exact text and leave the connection
// usable, and every node of a 3-node cluster grants slots of one schedule.
// Run by test/clients/clients_test.go, which starts the servers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis, { ReplyError } from 'ioredis';
import {
  skip, env, single, clusterNodes, key, acquireArgs, INTERVAL,
  grantedNow, reserved, denied, spaced, checkShape, ERR,
} from './helpers.mjs';

const clients = [];
after(() => clients.forEach((c) => c.disconnect()));

// connect returns a ready client. Without retries, so that a failing
// handshake fails the test instead of reconnecting forever.
async function connect(opts) {
  const c = new Redis({ lazyConnect: true, retryStrategy: () => null, ...opts });
  clients.push(c);
  const errors = [];
  c.on('error', (e) => errors.push(e));
  try {
    await c.connect();
  } catch (e) {
    e.events = errors;
    throw e;
  }
  return c;
}

const withPassword = () => connect({ ...single, password: env.password });

test('ioredis connects with the password option (default protocol 3: HELLO 3 AUTH, RESP3)', { skip }, async () => {
  const c = await connect({ ...single, password: env.password, connectionName: 'ioredis-test' });
  assert.equal(c.status, 'ready');
  assert.equal(await c.ping(), 'PONG');
  assert.equal(await c.call('CLIENT', 'GETNAME'), 'ioredis-test');
  assert.equal(await c.select(0), 'OK');
  assert.equal(await c.echo('hi'), 'hi');
});

test('ioredis connects with protocol: 2 (no HELLO sent)', { skip }, async () => {
  const c = await connect({ ...single, password: env.password, protocol: 2 });
  assert.equal(await c.ping(), 'PONG');
  grantedNow(await c.call(...acquireArgs(key('io-resp2'), 1)));
});

test('ioredis reports a wrong or missing password with Redis\'s error text', { skip }, async () => {
  // The handshake error is emitted as an 'error' event; connect() itself
  // rejects with ioredis's "Connection is closed.".
  await assert.rejects(connect({ ...single, password: 'wrong' }), (e) => {
    assert.deepEqual(e.events.map((x) => x.message), [ERR.wrongPass]);
    return true;
  });
  // No password: HELLO 3 is refused as Redis refuses it before AUTH.
  await assert.rejects(connect({ ...single }), (e) => {
    assert.deepEqual(e.events.map((x) => x.message), [ERR.helloNoAuth]);
    return true;
  });
  // In RESP2 (no HELLO, which Redis and throttledb refuse before AUTH) and
  // without the ready check the connection opens, and AUTH later works.
  const c = await connect({ ...single, enableReadyCheck: false, protocol: 2 });
  await assert.rejects(c.call(...acquireArgs(key('io-noauth'), 1)), { message: ERR.noAuth });
  assert.equal(await c.auth(env.password), 'OK');
  grantedNow(await c.call(...acquireArgs(key('io-noauth'), 1)));
});

test('ioredis: THROTTLE.ACQUIRE through call(): now, one interval later, then denied', { skip }, async () => {
  const c = await withPassword();
  const k = key('io-acquire');
  const first = grantedNow(await c.call(...acquireArgs(k, 1)));
  reserved(await c.call(...acquireArgs(k, 1)), first, 1);
  denied(await c.call(...acquireArgs(k, 1)), 1);
  // PEEK says what ACQUIRE would (wait_ms aside, which counts down) and
  // changes nothing.
  const peek = acquireArgs(k, 2, INTERVAL, 'THROTTLE.PEEK');
  const peeked = reserved(await c.call(...peek), first, 2);
  reserved(await c.call(...peek), first, 2);
  const got = reserved(await c.call(...acquireArgs(k, 2)), first, 2);
  assert.deepEqual({ ...got, waitMs: 0 }, { ...peeked, waitMs: 0 });
  // RESET forgets the key: the next call goes now. Only an integer reply.
  assert.equal(await c.call('THROTTLE.RESET', k), 1);
  grantedNow(await c.call(...acquireArgs(k, 1)));
  // SLOP sets expires_at - valid_at.
  const s = grantedNow(await c.call(...acquireArgs(key('io-slop'), 1), 'SLOP', '250'));
  assert.equal(s.expiresAt - s.validAt, 250);
});

test('ioredis: errors are ReplyErrors with Redis\'s text; the connection stays usable', { skip }, async () => {
  const c = await withPassword();
  const k = key('io-errors');
  const cases = [
    [['THROTTLE.ACQUIRE', k, String(INTERVAL)], ERR.arity],
    [['THROTTLE.ACQUIRE', k, 'soon', '1'], ERR.notInteger],
    [['THROTTLE.ACQUIRE', k, String(INTERVAL), '1', 'SLOP', 'x'], ERR.notInteger],
    [['THROTTLE.ACQUIRE', k, '0', '1'], 'ERR interval must be a positive integer (milliseconds)'],
  ];
  for (const [args, msg] of cases) {
    await assert.rejects(c.call(...args), (e) => {
      assert.ok(e instanceof ReplyError, `${e} is not a ReplyError`);
      assert.equal(e.message, msg);
      return true;
    });
  }
  // Data commands are not supported: Redis's unknown-command error.
  await assert.rejects(c.get('x'), { message: /^ERR unknown command 'get', with args beginning with: 'x'/ });
  // None of the failed calls touched the key.
  const first = grantedNow(await c.call(...acquireArgs(k, 1)));
  reserved(await c.call(...acquireArgs(k, 1)), first, 1);
  assert.equal(await c.ping(), 'PONG');
});

test('ioredis: a pipeline of ACQUIREs gets consecutive slots in order; an error in it is its own reply', { skip }, async () => {
  const c = await withPassword();
  const k = key('io-pipeline');
  const p = c.pipeline();
  for (let i = 0; i < 3; i++) p.call(...acquireArgs(k, 10));
  p.call('THROTTLE.ACQUIRE', k, 'x', '10');
  for (let i = 0; i < 3; i++) p.call(...acquireArgs(k, 10));
  const res = await p.exec();
  assert.equal(res.length, 7);
  assert.ok(res[3][0] instanceof ReplyError);
  assert.equal(res[3][0].message, ERR.notInteger);
  const ok = res.filter((_, i) => i !== 3);
  for (const [err] of ok) assert.equal(err, null);
  spaced(ok.map(([, r]) => r));

  // A pipeline that reaches max: the last is denied.
  const k2 = key('io-pipeline-max');
  const p2 = c.pipeline();
  for (let i = 0; i < 4; i++) p2.call(...acquireArgs(k2, 2));
  const res2 = (await p2.exec()).map(([err, r]) => (assert.equal(err, null), r));
  spaced(res2.slice(0, 3));
  denied(res2[3], 2);
});

test('ioredis: multi().exec() applies its ACQUIREs together, in order; a refused command aborts it', { skip }, async () => {
  // MULTI ... EXEC: throttledb applies the queued commands in one log
  // entry, so no other client's grant falls between them.
  const c = await withPassword();
  const k = key('io-multi');
  const m = c.multi();
  for (let i = 0; i < 3; i++) m.call(...acquireArgs(k, 5));
  spaced((await m.exec()).map(([err, r]) => (assert.equal(err, null), r)));
  // Only THROTTLE.ACQUIRE and THROTTLE.RESET can be queued: anything else
  // is refused and EXEC discards the whole transaction (EXECABORT).
  await assert.rejects(c.multi().call(...acquireArgs(k, 5)).call('THROTTLE.PEEK', k, '60000', '5').exec(), /EXECABORT/);
  const r = checkShape(await c.call(...acquireArgs(k, 5)));
  assert.equal(r.pending, 3, 'the aborted transaction took a slot');
});

test('ioredis: every node of a cluster, no password, grants slots of one schedule (followers forward)', { skip }, async () => {
  const nodes = await Promise.all(clusterNodes.map((n) => connect({ ...n })));
  // Which nodes are followers: RAFT.LEADER names the leader's address.
  const [, leaderAddr] = await nodes[0].call('RAFT.LEADER');
  const addrs = env.cluster;
  assert.ok(addrs.includes(leaderAddr), `leader ${leaderAddr} not in ${addrs}`);
  assert.equal(addrs.filter((a) => a !== leaderAddr).length, 2, 'two followers');

  // One call through each node in turn: slots one interval apart.
  const k = key('io-cluster');
  const replies = [];
  for (let round = 0; round < 2; round++) {
    for (const c of nodes) replies.push(await c.call(...acquireArgs(k, 10)));
  }
  spaced(replies);

  // A pipeline through each node (followers forward it whole).
  for (const [i, c] of nodes.entries()) {
    const kp = key(`io-cluster-pipeline-${i}`);
    const p = c.pipeline();
    for (let j = 0; j < 4; j++) p.call(...acquireArgs(kp, 10));
    spaced((await p.exec()).map(([err, r]) => (assert.equal(err, null), r)));
  }

  // Errors from a follower have the same text.
  for (const c of nodes) {
    await assert.rejects(c.call('THROTTLE.ACQUIRE', k, '1'), { message: ERR.arity });
  }
});
