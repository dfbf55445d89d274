// Failover drill client (cmd/rconn-proxy TestFailoverDrill): node-redis's createCluster writes
// one key of the tag's slot every INTERVAL ms for DURATION ms. argv: host port tag duration
// interval. Prints "OK <epoch ms>" per write and "ERR <epoch ms> <error>" per failed one.
import { createCluster } from 'redis';

const [host, port, tag, dur, iv] = process.argv.slice(2);
const end = Date.now() + Number(dur);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let c = null;
for (let i = 1; Date.now() < end; i++) {
  try {
    if (c === null) {
      const n = createCluster({
        rootNodes: [{ url: `redis://${host}:${port}` }],
        defaults: { socket: { connectTimeout: 1000 } },
      });
      n.on('error', () => {});
      await n.connect();
      c = n;
    }
    await c.set(`drill:{${tag}}:${i % 100}`, String(i));
    console.log('OK ' + Date.now());
  } catch (e) {
    console.log('ERR ' + Date.now() + ' ' + e.name + ': ' + String(e.message).replace(/\n/g, ' '));
  }
  await sleep(Number(iv));
}
process.exit(0);
