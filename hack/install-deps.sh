#!/usr/bin/env bash
# Install what the tests run that Go modules cannot bring: redis-server and redis-cli, and
# Node.js + npm for the node-redis check in test/e2e, haproxy for bench/'s proxy hop reference, iproute2 for the rig's pod network, and
# promtool for the alert rule tests in test/helm (Debian packages, when missing). promtool comes
# from Debian's prometheus package (about 30 MB, seconds to install) rather than a go install of
# github.com/prometheus/prometheus/cmd/promtool, which compiles the whole Prometheus dependency
# tree (cloud service discovery SDKs included): minutes of CPU on a 2-core machine, on every
# fresh one.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)   # the rig's pod network (ip netns, veth)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)   # promtool test rules (test/helm)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)   # the reference hop in bench/ (BenchmarkProxyHop)
python3 -c 'import redis' >/dev/null 2>&1 || missing+=(python3-redis)   # redis-py RedisCluster through rconn proxy (pkg/proxy)
command -v ruby >/dev/null 2>&1 && ruby -e 'require "redis"' >/dev/null 2>&1 || missing+=(ruby-redis)   # redis-rb in the proxy failover drill (cmd/rconn-proxy)
command -v php >/dev/null 2>&1 && php -r 'exit(class_exists("RedisCluster") ? 0 : 1);' >/dev/null 2>&1 || missing+=(php-cli php-redis)   # phpredis in the proxy failover drill
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "install-deps: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
echo "install-deps: apt-get install ${missing[*]}" >&2
if [ ! -f /tmp/.rconn-apt-updated ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch /tmp/.rconn-apt-updated; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian enables a redis-server service on port 6379; tests start their own servers.
# Debian's prometheus package enables a Prometheus server (and node exporter) the same way.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
  systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  systemctl disable --now haproxy >/dev/null 2>&1 || true   # bench/ starts its own, config written per run
fi
