<?php
// Failover drill client (cmd/rconn-proxy TestFailoverDrill): phpredis's RedisCluster writes one
// key of the tag's slot every INTERVAL ms for DURATION ms. argv: host port tag duration interval.
// Prints "OK <epoch ms>" per write and "ERR <epoch ms> <error>" per failed one.
[, $host, $port, $tag, $dur, $iv] = $argv;
$end = microtime(true) + $dur / 1000;
$c = null;
$i = 0;
$now = fn() => (int) (microtime(true) * 1000);
while (microtime(true) < $end) {
    $i++;
    try {
        if ($c === null) {
            $c = new RedisCluster(null, ["$host:$port"], 1.0, 1.0);
        }
        if ($c->set("drill:{" . $tag . "}:" . ($i % 100), (string) $i) === true) {
            echo "OK " . $now() . "\n";
        } else {
            echo "ERR " . $now() . " reply: " . $c->getLastError() . "\n";
        }
    } catch (Throwable $e) {
        echo "ERR " . $now() . " " . get_class($e) . ": " . str_replace("\n", " ", $e->getMessage()) . "\n";
    }
    usleep((int) $iv * 1000);
}
