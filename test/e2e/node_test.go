package e2e

// nodeRedisHeading is the docs/consuming.md section whose js block the node-redis check runs.
const nodeRedisHeading = "## Node.js: node-redis"

// nodeHarness runs after the docs snippet (which leaves a connected `redis`): SET/GET each key
// given on the command line, print one line, close.
const nodeHarness = `
const keys = process.argv.slice(2);
for (const k of keys) {
  await redis.set(k, 'from-node-redis');
  const v = await redis.get(k);
  if (v !== 'from-node-redis') throw new Error('GET ' + k + ' = ' + v);
}
console.log('node-redis ok ' + keys.length);
if (typeof redis.close === 'function') await redis.close(); else await redis.quit();
`
