#!/usr/bin/env bash
# Measures a newcomer's first hour (issue 26 item 7) on this machine: a fresh clone of HEAD with
# empty Go module/build, npm and asset caches (a fresh HOME), then each prerequisite of
# `make test` and `make test` itself (or `make demo` with TARGET=demo), one line per step with
# its wall time and the load average. Run it on an otherwise idle machine: other work on the
# cores makes the figures say nothing about the goals. apt packages are not removed (CI's
# `make deps` installs them; add its few minutes when comparing with CI).
set -uo pipefail
TARGET="${TARGET:-test}"
work="$(mktemp -d "${TMPDIR:-/tmp}/rconn-cold-XXXXXX")"
echo "cold-timings: working in $work (remove it when done)"
mkdir -p "$work/home"
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$work/home/"
git clone -q "$(git rev-parse --show-toplevel)" "$work/repo" || exit 1
cd "$work/repo" || exit 1
export HOME="$work/home"
unset XDG_CACHE_HOME GOPATH GOCACHE GOMODCACHE
export PATH="/usr/local/go/bin:$HOME/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
echo "rev $(git log --oneline -1)"
t0=$(date +%s)
# The prerequisites of the target, one by one (make demo does not build helm).
steps="deps envtest rig-assets helm"
[ "$TARGET" = demo ] && steps="deps envtest rig-assets"
for t in $steps "$TARGET"; do
  s=$(date +%s)
  make "$t" > "$work/$t.log" 2>&1
  rc=$?
  echo "$t rc=$rc $(( $(date +%s) - s )) s, load $(cut -d' ' -f1-3 /proc/loadavg) (log $work/$t.log)"
  [ $rc -eq 0 ] || exit $rc
done
echo "cold make $TARGET in total: $(( $(date +%s) - t0 )) s"
