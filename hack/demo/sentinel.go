package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/demo"
	"github.com/rconn-dev/redis-connection-operator/internal/world/rig"
	rclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

const sampleSentinel = "config/samples/rconn_v1_redisconnection_demo_sentinel.yaml"

// sentinelMode is $SENTINEL: "only" runs the Sentinel act without the Cluster act, "0" skips
// it, anything else (unset too) runs it after the Cluster act.
func sentinelMode() string {
	switch m := os.Getenv("SENTINEL"); m {
	case "only", "0":
		return m
	default:
		return "1"
	}
}

// sentinelSteps is how many steps the Sentinel act prints.
const sentinelSteps = 4

// stepCount is how many steps the demo prints: 11 for the Cluster act and the rest, 5 of them
// before the Cluster act's first.
func stepCount() int {
	switch sentinelMode() {
	case "only":
		return 5 + sentinelSteps
	case "0":
		return 11
	default:
		return 11 + sentinelSteps
	}
}

// sentinelAct is the Sentinel act: a Bitnami-style Sentinel StatefulSet, a `mode: Sentinel`
// RedisConnection (PodDNS map for ports 6379 and 26379), a second example app on its mount,
// `kubectl delete pod` of the master, then `kubectl rollout restart`.
func sentinelAct(s *session, step *stepper, app string, ns []string) {
	t, w, ctx := s.t, s.w, s.ctx
	step.next("the Sentinel act: statefulset/%s, Bitnami's redis chart with sentinel.enabled (3 pods, each a redis-server and a `redis-server --sentinel`; replicas and sentinels announce pod IPs)", demo.SentinelName)
	began := time.Now()
	s.must(w.StartSentinel(s.within(5 * time.Minute)))
	s.timed("Sentinel StatefulSet: 3 pods Ready, group whole", began)
	show(ctx, t, w, append(ns, "get", "pods", "-l", "app.kubernetes.io/name="+demo.SentinelName, "-o", "wide")...)
	master, addr, err := w.Sentinel.CurrentMaster(ctx)
	s.must(err)
	t.Logf("the sentinels name master %s (%s): a pod IP, which no app outside the pod network can reach", addr, master)

	step.next("applying %s: mode Sentinel, fromServices PodDNS with ports [6379, 26379]", sampleSentinel)
	applied := time.Now()
	show(ctx, t, w, append(ns, "apply", "-f", sampleSentinel)...)
	show(ctx, t, w, append(ns, "wait", "--for=condition=Ready", "--timeout=120s", "rconn/"+demo.SentinelConnection)...)
	s.timed("Sentinel RedisConnection Ready", applied)
	show(ctx, t, w, append(ns, "get", "rconn", demo.SentinelConnection, "-o",
		`jsonpath={range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\n"}{end}`)...)
	show(ctx, t, w, append(ns, "get", "rconn", demo.SentinelConnection, "-o",
		`jsonpath={range .status.nodeAddressMap[*]}{.announced}{"\t-> "}{.reachable}{"\n"}{end}`)...)

	step.next("mounting %s's ConfigMap and Secret and running a second example app on them (pkg/client Sentinel mode: a go-redis FailoverClient through the mapping dialer)", demo.SentinelConnection)
	m := w.Mount(t, s.within(30*time.Second), demo.SentinelConnection, demo.MountOptions{SyncPeriod: mountPeriod})
	logMount(t, m)
	url := func() string { return configURL(m.ConfigDir) }
	t.Logf("config.json url (the current master, mapped): %s", url())
	var echo atomic.Bool
	echo.Store(true)
	proc := demo.StartProcess(t, "sentinel-app", filepath.Join(w.Dir, "sentinel-app.log"), func(line string) {
		if echo.Load() {
			fmt.Println("    sentinel-app | " + trimLogTime(line))
		}
	}, app, "-config-dir", m.ConfigDir, "-secret-dir", m.SecretDir, "-dns-server", w.DNS.Addr(), "-interval", "250ms")
	good := func(l string) bool { return strings.Contains(l, "msg=round") && strings.Contains(l, `ok="1/1 shards"`) }
	from, err := proc.WaitLine(s.within(60*time.Second), 0, "a round through the master", good)
	s.must(err)
	_, err = proc.WaitLine(s.within(30*time.Second), from+1, "a second good round", good)
	s.must(err)
	echo.Store(false)

	step.next("kubectl delete pod %s (the master), then kubectl rollout restart statefulset/%s", master, demo.SentinelName)
	mark := len(proc.Lines())
	hooks := len(w.Sentinel.Runner.Notes())
	oldURL := url()
	deleted := time.Now()
	show(ctx, t, w, append(ns, "delete", "pod", master, "--wait=false")...)
	next := waitNewMaster(s, master)
	t.Logf("the sentinels elected %s (was %s) after %.1fs", next, master, time.Since(deleted).Seconds())
	s.must(waitURLChange(s.within(90*time.Second), url, oldURL))
	t.Logf("config.json url: %s -> %s (%.1fs after the delete)", oldURL, url(), time.Since(deleted).Seconds())
	nextIP := w.Sentinel.Runner.Addr(next)
	echo.Store(true)
	_, err = proc.WaitLine(s.within(90*time.Second), mark, "a good round on the new master "+nextIP, func(l string) bool {
		return good(l) && strings.Contains(l, nextIP+"->")
	})
	s.must(err)
	echo.Store(false)
	showHooks(t, w.Sentinel, &hooks)
	t.Logf("the app (pid %d, never restarted) followed the failover; rounds with an error: %d", proc.Pid(), failedRounds(proc.Lines()[mark:]))
	s.timed("Sentinel: delete the master pod -> app on the new master", deleted)

	mark = len(proc.Lines())
	rolling := time.Now()
	show(ctx, t, w, append(ns, "rollout", "restart", "statefulset/"+demo.SentinelName)...)
	show(ctx, t, w, append(ns, "rollout", "status", "statefulset/"+demo.SentinelName, "--timeout=5m")...)
	s.must(w.Sentinel.WaitRolledOut(ctx, 5*time.Minute))
	now, nowAddr, err := w.Sentinel.CurrentMaster(ctx)
	s.must(err)
	show(ctx, t, w, append(ns, "get", "pods", "-l", "app.kubernetes.io/name="+demo.SentinelName, "-o", "wide")...)
	nowIP := w.Sentinel.Runner.Addr(now)
	_, err = proc.WaitLine(s.within(90*time.Second), mark, "a good round on the master after the rollout", func(l string) bool {
		return good(l) && strings.Contains(l, nowIP+"->")
	})
	s.must(err)
	showHooks(t, w.Sentinel, &hooks)
	t.Logf("after the rollout the master is %s (%s); config.json url %s; the app kept writing, rounds with an error: %d",
		now, nowAddr, url(), failedRounds(proc.Lines()[mark:]))
	s.timed("Sentinel: rollout restart of 3 pods", rolling)
}

// showHooks prints the pod runner's preStop notes since *seen: the chart's preStop asks the
// master's sentinel for SENTINEL FAILOVER before the pod stops, so apps see a planned
// failover, not the sentinels' failure detection.
func showHooks(t *runner, rs *rig.RedisSentinel, seen *int) {
	notes := rs.Runner.Notes()
	for _, n := range notes[min(*seen, len(notes)):] {
		if strings.Contains(n, "preStop") {
			t.Logf("pod lifecycle: %s", n)
		}
	}
	*seen = len(notes)
}

// waitNewMaster waits until a majority of the sentinels names a master other than old.
func waitNewMaster(s *session, old string) string {
	ctx := s.within(2 * time.Minute)
	for {
		if m, _, err := s.w.Sentinel.CurrentMaster(ctx); err == nil && m != "" && m != old {
			return m
		}
		select {
		case <-ctx.Done():
			s.must(fmt.Errorf("the sentinels never elected a master other than %s", old))
			return ""
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitURLChange(ctx context.Context, url func() string, old string) error {
	for {
		if u := url(); u != "" && u != old {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("config.json's url never changed from %s", old)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// configURL is the mounted config.json's url ("" while it does not load).
func configURL(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return ""
	}
	cfg, err := rclient.LoadConfig(b)
	if err != nil {
		return ""
	}
	return cfg.URL
}

func failedRounds(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, "msg=round") && strings.Contains(l, "level=WARN") {
			n++
		}
	}
	return n
}
