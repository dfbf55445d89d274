// ioredis Cluster through rconn-proxy: no natMap, only the seed listener. Driven by the Go test
// (TestIORedisClusterThroughProxy): argv host port key-per-shard...; prints progress lines, reads
// "blocked" and "migrated" from stdin when the test has done its part.
'use strict';
const { Cluster } = require('ioredis');
const readline = require('node:readline');

const [host, port, ...keys] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const expectLine = async (want) => {
  const { value } = await lines.next();
  if (value !== want) throw new Error(`stdin: got ${value}, want ${want}`);
};
const say = (s) => console.log(s);
const eq = (got, want, what) => {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
};
const seed = [{ host, port: Number(port) }];
const options = { clusterRetryStrategy: (n) => (n > 3 ? null : 100), redisOptions: { maxRetriesPerRequest: 3 } };
const nodes = (c) => c.nodes('all').map((n) => `NODE ${n.options.host}:${n.options.port}`);
const until = async (what, f) => {
  for (const end = Date.now() + 10000; Date.now() < end;) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out: ' + what);
};

async function main() {
  const rc = new Cluster(seed, options);
  rc.on('error', (err) => say('cluster error ' + err.message));
  for (const k of keys) {
    eq(await rc.set(k, 'io-' + k), 'OK', 'SET ' + k);
    eq(await rc.get(k), 'io-' + k, 'GET ' + k);
  }
  nodes(rc).forEach(say);
  say('SET/GET ok');

  // A pipeline (ioredis sends a cluster pipeline to one node: one hash tag).
  const p = rc.pipeline();
  for (let i = 0; i < 50; i++) p.set(`{io}p-${i}`, i).get(`{io}p-${i}`);
  const res = await p.exec();
  for (let i = 0; i < 50; i++) eq(res[2 * i + 1], [null, String(i)], 'pipelined GET ' + i);
  say('pipeline ok');

  eq(await rc.multi().set('{io}a', '1').incr('{io}a').exec(), [[null, 'OK'], [null, 2]], 'MULTI/EXEC');
  say('MULTI/EXEC ok');

  const sub = new Cluster(seed, options);
  const got = [];
  sub.on('message', (ch, m) => got.push([ch, m]));
  await sub.subscribe('io-news');
  await until('the PUBLISHed message', async () => { await rc.publish('io-news', 'hello'); return got.length > 0; });
  eq(got[0], ['io-news', 'hello'], 'message');
  sub.disconnect();
  say('SUBSCRIBE ok');

  const ssub = new Cluster(seed, { ...options, shardedSubscribers: true });
  const sgot = [];
  ssub.on('smessage', (ch, m) => sgot.push([ch, m]));
  await ssub.ssubscribe('io-snews');
  await until('the SPUBLISHed message', async () => { await rc.spublish('io-snews', 'hi'); return sgot.length > 0; });
  eq(sgot[0], ['io-snews', 'hi'], 'smessage');
  ssub.disconnect();
  say('SSUBSCRIBE ok');

  const blocking = rc.duplicate();
  const popped = blocking.blpop('io-queue', 20);
  say('BLPOP-WAITING io-queue');
  await expectLine('blocked');
  await rc.rpush('io-queue', 'job');
  eq(await popped, ['io-queue', 'job'], 'BLPOP');
  blocking.disconnect();
  say('BLPOP ok');

  say('READY-TO-MIGRATE');
  await expectLine('migrated');
  eq(await rc.get(keys[0]), 'io-' + keys[0], 'GET after the slot moved');
  eq(await rc.set(keys[0], 'after'), 'OK', 'SET after the slot moved');
  eq(await rc.get(keys[0]), 'after', 'GET after SET after the slot moved');
  nodes(rc).forEach(say);
  rc.disconnect();
  say('ALL-OK');
}

main().then(() => process.exit(0), (err) => { console.error('FAIL', err); process.exit(1); });
