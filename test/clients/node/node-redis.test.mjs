// Proves that node-redis (the `redis` package) works with throttledb as a
// plain (non-cluster) Redis client, with its defaults (RESP3) and with
// RESP: 2: it connects with a password (url or option) or without one, its
// connect-time handshake (HELLO or AUTH, CLIENT SETNAME, CLIENT SETINFO)
// succeeds, THROTTLE.ACQUIRE works through sendCommand(), multi().exec(),
// multi().execAsPipeline() and concurrent sendCommand()s, errors arrive as
// ErrorReply with Redis's exact text and leave the connection usable, and
// every node of a 3-node cluster grants slots of one schedule.
// Run by test/clients/clients_test.go, which starts the servers.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient, ErrorReply } from 'redis';
import {
  skip, env, single, clusterNodes, key, acquireArgs, INTERVAL,
  grantedNow, reserved, denied, spaced, checkShape, ERR,
} from './helpers.mjs';

// node-redis 6 defaults to RESP3 (HELLO 3), which throttledb speaks; one
// test connects that way. The others set RESP: 2, the protocol older
// clients and redis-cli use, so that both are covered. With RESP: 2 it
// sends AUTH (if a password is set) instead of HELLO.
const RESP = 2;

const clients = [];
after(() => Promise.all(clients.map((c) => (c.isOpen ? c.close() : undefined))));

// connect returns a connected client; without reconnects, so that a failing
// handshake fails the test instead of retrying forever.
async function connect(opts) {
  const c = createClient({ RESP, ...opts, socket: { reconnectStrategy: false, ...opts.socket } });
  c.on('error', () => {}); // connect() rejects with the same error
  clients.push(c);
  await c.connect();
  return c;
}

const url = (password) => `redis://${password ? `:${encodeURIComponent(password)}@` : ''}${env.addr}`;
const withPassword = () => connect({ url: url(env.password) });
const acquire = (c, ...a) => c.sendCommand(acquireArgs(...a));

test('node-redis connects with its defaults (RESP3: HELLO 3 AUTH)', { skip }, async () => {
  const c = createClient({ url: url(env.password), socket: { reconnectStrategy: false } });
  c.on('error', () => {});
  after(() => c.destroy());
  await c.connect();
  assert.equal(await c.ping(), 'PONG');
  grantedNow(await c.sendCommand(acquireArgs(key('nr-resp3'), 1)));
  assert.equal(await c.clientGetName(), null); // RESP3's null
});

test('node-redis connects with the password in the url (RESP: 2)', { skip }, async () => {
  const c = await connect({ url: url(env.password), name: 'node-redis-test' });
  assert.equal(c.isReady, true);
  assert.equal(await c.ping(), 'PONG');
  assert.equal(await c.clientGetName(), 'node-redis-test');
  assert.equal(await c.sendCommand(['SELECT', '0']), 'OK');
  assert.equal(await c.echo('hi'), 'hi');
});

test('node-redis connects with the password option and socket host/port (RESP: 2)', { skip }, async () => {
  const c = await connect({ socket: { ...single }, password: env.password });
  assert.equal(await c.ping(), 'PONG');
  grantedNow(await acquire(c, key('nr-option'), 1));
});

test('node-redis reports a wrong or missing password with Redis\'s error text', { skip }, async () => {
  await assert.rejects(connect({ url: url('wrong') }), (e) => {
    assert.ok(e instanceof ErrorReply, `${e} is not an ErrorReply`);
    assert.equal(e.message, ERR.wrongPass);
    return true;
  });
  // No password: node-redis connects (it sends no command that needs one
  // and ignores CLIENT SETINFO errors); commands get NOAUTH until AUTH.
  const c = await connect({ url: url('') });
  await assert.rejects(acquire(c, key('nr-noauth'), 1), { message: ERR.noAuth });
  assert.equal(await c.sendCommand(['AUTH', env.password]), 'OK');
  grantedNow(await acquire(c, key('nr-noauth'), 1));
});

test('node-redis: THROTTLE.ACQUIRE through sendCommand(): now, one interval later, then denied', { skip }, async () => {
  const c = await withPassword();
  const k = key('nr-acquire');
  const first = grantedNow(await acquire(c, k, 1));
  reserved(await acquire(c, k, 1), first, 1);
  denied(await acquire(c, k, 1), 1);
  // PEEK says what ACQUIRE would (wait_ms aside, which counts down) and
  // changes nothing.
  const peek = () => c.sendCommand(acquireArgs(k, 2, INTERVAL, 'THROTTLE.PEEK'));
  const peeked = reserved(await peek(), first, 2);
  reserved(await peek(), first, 2);
  const got = reserved(await acquire(c, k, 2), first, 2);
  assert.deepEqual({ ...got, waitMs: 0 }, { ...peeked, waitMs: 0 });
  // RESET forgets the key: the next call goes now.
  assert.equal(await c.sendCommand(['THROTTLE.RESET', k]), 1);
  grantedNow(await acquire(c, k, 1));
  // SLOP sets expires_at - valid_at.
  const s = grantedNow(await c.sendCommand([...acquireArgs(key('nr-slop'), 1), 'SLOP', '250']));
  assert.equal(s.expiresAt - s.validAt, 250);
});

test('node-redis: errors are ErrorReplys with Redis\'s text; the connection stays usable', { skip }, async () => {
  const c = await withPassword();
  const k = key('nr-errors');
  const cases = [
    [['THROTTLE.ACQUIRE', k, String(INTERVAL)], ERR.arity],
    [['THROTTLE.ACQUIRE', k, 'soon', '1'], ERR.notInteger],
    [['THROTTLE.ACQUIRE', k, String(INTERVAL), '1', 'SLOP', 'x'], ERR.notInteger],
    [['THROTTLE.ACQUIRE', k, '0', '1'], 'ERR interval must be a positive integer (milliseconds)'],
  ];
  for (const [args, msg] of cases) {
    await assert.rejects(c.sendCommand(args), (e) => {
      assert.ok(e instanceof ErrorReply, `${e} is not an ErrorReply`);
      assert.equal(e.message, msg);
      return true;
    });
  }
  // Data commands are not supported: Redis's unknown-command error.
  await assert.rejects(c.get('x'), { message: /^ERR unknown command 'GET', with args beginning with: 'x'/ });
  // None of the failed calls touched the key.
  const first = grantedNow(await acquire(c, k, 1));
  reserved(await acquire(c, k, 1), first, 1);
  assert.equal(await c.ping(), 'PONG');
});

test('node-redis: multi().execAsPipeline() of ACQUIREs gets consecutive slots in order', { skip }, async () => {
  const c = await withPassword();
  const k = key('nr-pipeline');
  const m = c.multi();
  for (let i = 0; i < 6; i++) m.addCommand(acquireArgs(k, 10));
  const res = await m.execAsPipeline();
  assert.equal(res.length, 6);
  spaced(res);

  // A pipeline that reaches max: the last is denied.
  const k2 = key('nr-pipeline-max');
  const m2 = c.multi();
  for (let i = 0; i < 4; i++) m2.addCommand(acquireArgs(k2, 2));
  const res2 = await m2.execAsPipeline();
  spaced(res2.slice(0, 3));
  denied(res2[3], 2);
});

test('node-redis: an error inside a pipeline: execAsPipeline() rejects with it, allSettled sees every reply', { skip }, async () => {
  const c = await withPassword();
  const bad = (k) => ['THROTTLE.ACQUIRE', k, 'x', '10'];
  // execAsPipeline() is a Promise.all over the commands: it rejects with the
  // first error and drops the other replies, although the server served
  // them (their slots are taken).
  const k = key('nr-pipeline-error');
  const m = c.multi();
  for (let i = 0; i < 3; i++) m.addCommand(acquireArgs(k, 10));
  m.addCommand(bad(k));
  for (let i = 0; i < 3; i++) m.addCommand(acquireArgs(k, 10));
  await assert.rejects(m.execAsPipeline(), (e) => {
    assert.ok(e instanceof ErrorReply, `${e} is not an ErrorReply`);
    assert.equal(e.message, ERR.notInteger);
    return true;
  });
  assert.equal(checkShape(await acquire(c, k, 10)).pending, 6, 'the six ACQUIREs were not all served');

  // To see every reply, send the commands concurrently and use
  // Promise.allSettled: they go out as one pipeline all the same.
  const k2 = key('nr-pipeline-error-settled');
  const cmds = [acquireArgs(k2, 10), acquireArgs(k2, 10), bad(k2), acquireArgs(k2, 10)];
  const res = await Promise.allSettled(cmds.map((a) => c.sendCommand(a)));
  assert.equal(res[2].status, 'rejected');
  assert.ok(res[2].reason instanceof ErrorReply);
  assert.equal(res[2].reason.message, ERR.notInteger);
  const ok = res.filter((_, i) => i !== 2);
  for (const r of ok) assert.equal(r.status, 'fulfilled');
  spaced(ok.map((r) => r.value));
});

test('node-redis: concurrent sendCommand()s are pipelined and get consecutive slots in send order', { skip }, async () => {
  const c = await withPassword();
  const k = key('nr-concurrent');
  const res = await Promise.all(Array.from({ length: 6 }, () => acquire(c, k, 10)));
  spaced(res);
});

test('node-redis: multi().exec() applies its ACQUIREs together, in order; a refused command aborts it', { skip }, async () => {
  // MULTI ... EXEC: throttledb applies the queued commands in one log
  // entry, so no other client's grant falls between them.
  const c = await withPassword();
  const k = key('nr-multi');
  const m = c.multi();
  for (let i = 0; i < 3; i++) m.addCommand(acquireArgs(k, 5));
  spaced(await m.exec());
  // Only THROTTLE.ACQUIRE and THROTTLE.RESET can be queued: anything else
  // is refused and EXEC discards the whole transaction (EXECABORT).
  // node-redis rejects with the first error: the refusal while queueing.
  await assert.rejects(c.multi().addCommand(acquireArgs(k, 5)).addCommand(['THROTTLE.PEEK', k, '60000', '5']).exec(),
    /ERR command 'throttle.peek' is not allowed in a transaction/);
  const r = checkShape(await acquire(c, k, 5));
  assert.equal(r.pending, 3, 'the aborted transaction took a slot');
  assert.equal(await c.ping(), 'PONG');
});

test('node-redis: every node of a cluster, no password, grants slots of one schedule (followers forward)', { skip }, async () => {
  const nodes = await Promise.all(clusterNodes.map((n) => connect({ socket: { ...n } })));
  // Which nodes are followers: RAFT.LEADER names the leader's address.
  const [, leaderAddr] = await nodes[0].sendCommand(['RAFT.LEADER']);
  assert.ok(env.cluster.includes(leaderAddr), `leader ${leaderAddr} not in ${env.cluster}`);
  assert.equal(env.cluster.filter((a) => a !== leaderAddr).length, 2, 'two followers');

  // One call through each node in turn: slots one interval apart.
  const k = key('nr-cluster');
  const replies = [];
  for (let round = 0; round < 2; round++) {
    for (const c of nodes) replies.push(await acquire(c, k, 10));
  }
  spaced(replies);

  // A pipeline through each node (followers forward it whole).
  for (const [i, c] of nodes.entries()) {
    const m = c.multi();
    const kp = key(`nr-cluster-pipeline-${i}`);
    for (let j = 0; j < 4; j++) m.addCommand(acquireArgs(kp, 10));
    spaced(await m.execAsPipeline());
  }

  // Errors from a follower have the same text.
  for (const c of nodes) {
    await assert.rejects(c.sendCommand(['THROTTLE.ACQUIRE', k, '1']), { message: ERR.arity });
  }
});
