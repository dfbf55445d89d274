# Failover drill client (cmd/rconn-proxy TestFailoverDrill): redis-py's RedisCluster writes one
# key of the tag's slot every INTERVAL ms for DURATION ms. argv: host port tag duration interval.
# Prints "OK <epoch ms>" per write and "ERR <epoch ms> <error>" per failed one.
import sys
import time

from redis.cluster import RedisCluster

host, port, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
end = time.time() + float(sys.argv[4]) / 1000
interval = float(sys.argv[5]) / 1000
c = None
i = 0
while time.time() < end:
    i += 1
    try:
        if c is None:
            c = RedisCluster(host=host, port=port, socket_timeout=1, socket_connect_timeout=1)
        c.set("drill:{%s}:%d" % (tag, i % 100), i)
        print("OK %d" % (time.time() * 1000), flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is what the drill counts
        print("ERR %d %s: %s" % (time.time() * 1000, type(e).__name__, str(e).replace("\n", " ")), flush=True)
    time.sleep(interval)
