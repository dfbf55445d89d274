// Failover drill client (cmd/rconn-proxy TestFailoverDrill): ioredis's Cluster writes one key of
// the tag's slot every INTERVAL ms for DURATION ms. argv: host port tag duration interval.
// Prints "OK <epoch ms>" per write and "ERR <epoch ms> <error>" per failed one.
'use strict';
const { Cluster } = require('ioredis');

const [host, port, tag, dur, iv] = process.argv.slice(2);
const c = new Cluster([{ host, port: Number(port) }], {
  redisOptions: { connectTimeout: 1000, commandTimeout: 1000 },
});
c.on('error', () => {});
const end = Date.now() + Number(dur);
(async () => {
  for (let i = 1; Date.now() < end; i++) {
    try {
      await c.set(`drill:{${tag}}:${i % 100}`, String(i));
      console.log('OK ' + Date.now());
    } catch (e) {
      console.log('ERR ' + Date.now() + ' ' + e.name + ': ' + String(e.message).replace(/\n/g, ' '));
    }
    await new Promise((r) => setTimeout(r, Number(iv)));
  }
  c.disconnect();
  process.exit(0);
})();
