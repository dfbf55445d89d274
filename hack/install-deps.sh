#!/usr/bin/env bash
# Install what the tests run that Go modules cannot bring: redis-server and redis-cli, and
# Node.js + npm for the node-redis check in test/e2e, iproute2 for the rig's pod network (Debian packages, when missing).
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)   # the rig's pod network (ip netns, veth)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "install-deps: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
echo "install-deps: apt-get install ${missing[*]}" >&2
if [ ! -f /tmp/.rconn-apt-updated ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq && touch /tmp/.rconn-apt-updated; fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
# Debian enables a redis-server service on port 6379; tests start their own servers.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
