// Package bench compares rconn's pkg/client with plain go-redis and with rueidis on the same
// loopback servers in one run. It is a separate module so that peers stay out of the main
// go.mod. Run it with `make bench`, or:
//
//	cd bench && go test -run '^$' -bench . -benchmem -count 3 | tee bench.out
//	go run ./cmd/table < bench.out
package bench

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/redis/rueidis"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Client names, in table order (cmd/table knows them).
const (
	goRedis      = "go-redis"
	goRedisAP    = "go-redis-autopipeliner"
	rconn        = "rconn"
	rconnAP      = "rconn-autopipeline"
	rueidisName  = "rueidis"
	pipelineSize = 100
)

// subject is one client under test.
type subject struct {
	name  string
	get   func(ctx context.Context, key string) error
	set   func(ctx context.Context, key string) error
	pipe  func(ctx context.Context, keys []string) error // pipelineSize GETs
	close func()
}

func goRedisSubject(name string, c redis.UniversalClient, closeFn func()) subject {
	return subject{
		name: name,
		get:  func(ctx context.Context, k string) error { return c.Get(ctx, k).Err() },
		set:  func(ctx context.Context, k string) error { return c.Set(ctx, k, "v", 0).Err() },
		pipe: func(ctx context.Context, keys []string) error {
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Get(ctx, k)
				}
				return nil
			})
			return err
		},
		close: closeFn,
	}
}

func rueidisSubject(c rueidis.Client) subject {
	return subject{
		name: rueidisName,
		get:  func(ctx context.Context, k string) error { return c.Do(ctx, c.B().Get().Key(k).Build()).Error() },
		set: func(ctx context.Context, k string) error {
			return c.Do(ctx, c.B().Set().Key(k).Value("v").Build()).Error()
		},
		pipe: func(ctx context.Context, keys []string) error {
			cmds := make(rueidis.Commands, len(keys))
			for i, k := range keys {
				cmds[i] = c.B().Get().Key(k).Build()
			}
			for _, r := range c.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					return err
				}
			}
			return nil
		},
		close: c.Close,
	}
}

var noMaint = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

// topology is one set of servers with every client connected to it.
type topology struct {
	name     string
	subjects []subject
	admins   []*redis.Client // one per server, for INFO cpu
}

// newTopology connects every client to addrs (one standalone server, or cluster nodes). rconn
// maps every node through an identity nodeAddressMap, so every connection goes through the
// mapping dialer.
func newTopology(ctx context.Context, name string, addrs []string, isCluster bool) (*topology, error) {
	identity := map[string]string{}
	for _, a := range addrs {
		identity[a] = a
	}
	m, err := cluster.StaticMap(identity)
	if err != nil {
		return nil, err
	}
	t := &topology{name: name}
	for _, a := range addrs {
		t.admins = append(t.admins, redis.NewClient(adminOptions(a)))
	}
	var plain redis.UniversalClient
	var ap *redis.AutoPipeliner
	if isCluster {
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1], MaintNotificationsConfig: noMaint})
		plain = cc
		// A second plain client for the bare AutoPipeliner, so its pools are its own.
		cc2 := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1], MaintNotificationsConfig: noMaint})
		if ap, err = cc2.AutoPipeline(); err != nil {
			return nil, err
		}
		t.subjects = append(t.subjects, goRedisSubject(goRedis, cc, func() { _ = cc.Close() }),
			goRedisSubject(goRedisAP, ap, func() { _ = ap.Close(); _ = cc2.Close() }))
	} else {
		c := redis.NewClient(&redis.Options{Addr: addrs[0], MaintNotificationsConfig: noMaint})
		plain = c
		c2 := redis.NewClient(&redis.Options{Addr: addrs[0], MaintNotificationsConfig: noMaint})
		if ap, err = c2.AutoPipeline(); err != nil {
			return nil, err
		}
		t.subjects = append(t.subjects, goRedisSubject(goRedis, c, func() { _ = c.Close() }),
			goRedisSubject(goRedisAP, ap, func() { _ = ap.Close(); _ = c2.Close() }))
	}
	for _, autoPipeline := range []bool{false, true} {
		var c *client.Client
		if isCluster {
			c, err = client.NewCluster(ctx, client.ClusterOptions{RootNodes: []string{"redis://" + addrs[0]}, NodeAddressMap: m, AutoPipeline: autoPipeline})
		} else {
			c, err = client.NewClient(ctx, client.Options{URL: "redis://" + addrs[0], NodeAddressMap: m, AutoPipeline: autoPipeline})
		}
		if err != nil {
			return nil, fmt.Errorf("rconn (autoPipeline %v): %w", autoPipeline, err)
		}
		name := rconn
		if autoPipeline {
			name = rconnAP
		}
		t.subjects = append(t.subjects, goRedisSubject(name, c, func() { _ = c.Close() }))
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	t.subjects = append(t.subjects, rueidisSubject(rc))
	// Every GET finds its key.
	for _, k := range benchKeys {
		if err := plain.Set(ctx, k, "value-"+k, 0).Err(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *topology) close() {
	for _, s := range t.subjects {
		s.close()
	}
	for _, a := range t.admins {
		_ = a.Close()
	}
}

var benchKeys = func() []string {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "bench:" + strconv.Itoa(i)
	}
	return keys
}()

// env is started on first use and stopped by TestMain.
var env struct {
	once       sync.Once
	err        error
	servers    *servers
	topologies []*topology
}

func setup(tb testing.TB) []*topology {
	tb.Helper()
	env.once.Do(func() {
		ctx := context.Background()
		if env.servers, env.err = startServers(); env.err != nil {
			return
		}
		for _, tc := range []struct {
			name      string
			addrs     []string
			isCluster bool
		}{
			{"cluster", env.servers.clusterAddrs(), true},
			{"standalone", []string{env.servers.standalone.addr()}, false},
		} {
			t, err := newTopology(ctx, tc.name, tc.addrs, tc.isCluster)
			if err != nil {
				env.err = fmt.Errorf("%s: %w", tc.name, err)
				return
			}
			env.topologies = append(env.topologies, t)
		}
	})
	if env.err != nil {
		tb.Fatal(env.err)
	}
	return env.topologies
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopHop()
	for _, t := range env.topologies {
		t.close()
	}
	if env.servers != nil {
		env.servers.stop()
	}
	os.Exit(code)
}

// TestSubjectsWork checks every client against every topology before anyone trusts a figure.
func TestSubjectsWork(t *testing.T) {
	ctx := context.Background()
	for _, topo := range setup(t) {
		for _, s := range topo.subjects {
			if err := s.set(ctx, benchKeys[0]); err != nil {
				t.Errorf("%s/%s SET: %v", topo.name, s.name, err)
			}
			if err := s.get(ctx, benchKeys[1]); err != nil {
				t.Errorf("%s/%s GET: %v", topo.name, s.name, err)
			}
			if err := s.pipe(ctx, benchKeys[:pipelineSize]); err != nil {
				t.Errorf("%s/%s pipeline: %v", topo.name, s.name, err)
			}
		}
	}
}

// BenchmarkClients: <topology>/<command>/par<N>/<client>. PIPE100 is one pipeline of 100 GETs
// per op (cmd/table counts its commands).
func BenchmarkClients(b *testing.B) {
	ctx := context.Background()
	for _, topo := range setup(b) {
		for _, op := range []string{"GET", "SET", "PIPE100"} {
			for _, par := range []int{1, 64, 512} {
				for _, s := range topo.subjects {
					do := s.get
					switch op {
					case "SET":
						do = s.set
					case "PIPE100":
						do = func(ctx context.Context, k string) error {
							i, _ := strconv.Atoi(k[len("bench:"):])
							i %= (len(benchKeys) - pipelineSize)
							return s.pipe(ctx, benchKeys[i:i+pipelineSize])
						}
					}
					perOp := 1
					if op == "PIPE100" {
						perOp = pipelineSize
					}
					b.Run(fmt.Sprintf("%s/%s/par%d/%s", topo.name, op, par, s.name), func(b *testing.B) {
						cpu := topo.startCPU(ctx)
						run(b, par, func(i uint64) error { return do(ctx, benchKeys[i%uint64(len(benchKeys))]) })
						b.StopTimer()
						cpu.report(ctx, b, time.Duration(0), b.N*perOp)
					})
				}
			}
		}
	}
}

// run calls f b.N times from par goroutines (par 1: the benchmark goroutine itself, as an app
// doing one command at a time) and fails the benchmark on the first error.
func run(b *testing.B, par int, f func(i uint64) error) {
	b.ReportAllocs()
	b.ResetTimer()
	if par == 1 {
		for i := 0; i < b.N; i++ {
			if err := f(uint64(i)); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next atomic.Uint64
	b.SetParallelism(max(1, par/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := f(next.Add(1)); err != nil {
				b.Error(err) // not Fatal: this is not the benchmark goroutine
				return
			}
		}
	})
}
