// node-redis createCluster through rconn-proxy: no nodeAddressMap, only the seed listener.
// Driven by the Go test (TestNodeRedisClusterThroughProxy) like ioredis-cluster.cjs.
import { createCluster } from 'redis';
import readline from 'node:readline';

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
const until = async (what, f) => {
  for (const end = Date.now() + 10000; Date.now() < end;) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('timed out: ' + what);
};
const nodes = (c) => [...c.masters, ...c.replicas].map((n) => `NODE ${n.host}:${n.port}`);

async function main() {
  const rc = createCluster({
    rootNodes: [{ url: `redis://${host}:${port}` }],
    defaults: { socket: { connectTimeout: 5000, reconnectStrategy: false } },
  });
  rc.on('error', (err) => say('cluster error ' + err.message));
  await rc.connect();
  for (const k of keys) {
    eq(await rc.set(k, 'nr-' + k), 'OK', 'SET ' + k);
    eq(await rc.get(k), 'nr-' + k, 'GET ' + k);
  }
  nodes(rc).forEach(say);
  say('SET/GET ok');

  const p = rc.multi('{nr}');
  for (let i = 0; i < 50; i++) p.set(`{nr}p-${i}`, String(i)).get(`{nr}p-${i}`);
  const res = await p.execAsPipeline();
  for (let i = 0; i < 50; i++) eq(res[2 * i + 1], String(i), 'pipelined GET ' + i);
  say('pipeline ok');

  eq(await rc.multi('{nr}').set('{nr}a', '1').incr('{nr}a').exec(), ['OK', 2], 'MULTI/EXEC');
  say('MULTI/EXEC ok');

  const got = [];
  await rc.subscribe('nr-news', (m, ch) => got.push([ch, m]));
  await until('the PUBLISHed message', async () => { await rc.publish('nr-news', 'hello'); return got.length > 0; });
  eq(got[0], ['nr-news', 'hello'], 'message');
  await rc.unsubscribe('nr-news');
  say('SUBSCRIBE ok');

  const sgot = [];
  await rc.sSubscribe('nr-snews', (m, ch) => sgot.push([ch, m]));
  await until('the SPUBLISHed message', async () => { await rc.sPublish('nr-snews', 'hi'); return sgot.length > 0; });
  eq(sgot[0], ['nr-snews', 'hi'], 'smessage');
  await rc.sUnsubscribe('nr-snews');
  say('SSUBSCRIBE ok');

  const blocking = rc.duplicate();
  blocking.on('error', (err) => say('blocking error ' + err.message));
  await blocking.connect();
  const popped = blocking.blPop('nr-queue', 20);
  say('BLPOP-WAITING nr-queue');
  await expectLine('blocked');
  await rc.rPush('nr-queue', 'job');
  eq(await popped, { key: 'nr-queue', element: 'job' }, 'BLPOP');
  await blocking.close();
  say('BLPOP ok');

  say('READY-TO-MIGRATE');
  await expectLine('migrated');
  eq(await rc.get(keys[0]), 'nr-' + keys[0], 'GET after the slot moved');
  eq(await rc.set(keys[0], 'after'), 'OK', 'SET after the slot moved');
  eq(await rc.get(keys[0]), 'after', 'GET after SET after the slot moved');
  nodes(rc).forEach(say);
  await rc.close();
  say('ALL-OK');
}

main().then(() => process.exit(0), (err) => { console.error('FAIL', err); process.exit(1); });
