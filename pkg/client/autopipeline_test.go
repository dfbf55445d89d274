package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// writeCounter wraps a base dial function and counts Write calls on every connection it
// returns: one Write carries one flushed command buffer, so with pipelining there are fewer
// Writes than commands.
type writeCounter struct {
	base   func(ctx context.Context, network, addr string) (net.Conn, error)
	writes atomic.Int64
}

func (w *writeCounter) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := w.base(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &w.writes}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// SyscallConn keeps go-redis's idle-connection health check working through the wrapper.
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a syscall.Conn")
	}
	return sc.SyscallConn()
}

// slotKey returns a key of slot i*stride spread over all 16384 slots.
func slotKey(tag string, i int) string {
	slot := (i * 7919) % cluster.SlotCount
	return "{" + cluster.KeyForSlot(slot) + "}" + tag
}

// hammer runs n goroutines doing iters SET+GET pairs each through c and returns the first
// error (wrong values included) and the number of commands issued.
func hammer(ctx context.Context, c redis.Cmdable, n, iters int, key func(g, i int) string) (int64, error) {
	var wg sync.WaitGroup
	var cmds atomic.Int64
	errs := make(chan error, n)
	start := make(chan struct{})
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range iters {
				k := key(g, i)
				v := fmt.Sprintf("%d-%d", g, i)
				cmds.Add(2)
				if err := c.Set(ctx, k, v, 0).Err(); err != nil {
					errs <- fmt.Errorf("SET %s: %w", k, err)
					return
				}
				got, err := c.Get(ctx, k).Result()
				if err != nil {
					errs <- fmt.Errorf("GET %s: %w", k, err)
					return
				}
				if got != v {
					errs <- fmt.Errorf("GET %s = %q, want %q", k, got, v)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	return cmds.Load(), <-errs
}

// autoPipeline from the rendered config on a cluster announcing unreachable hostnames:
// concurrent correctness across all slots, real pipelining, per-command errors, a slot
// migrated mid-run, and only mapped addresses dialed.
func TestAutoPipelineClusterFromConfig(t *testing.T) {
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg, real := mappedConfig(rc)
	cfg.Rconn.AutoPipeline = true
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	rec := &recorder{}
	wc := &writeCounter{base: rec.Dial}
	c, err := client.OpenOptions{Dial: wc.Dial, MonitorInterval: time.Hour}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.AutoPipelining() {
		t.Fatal("rconn.autoPipeline is on but the client does not batch")
	}
	var _ redis.UniversalClient = c

	t.Run("64 goroutines across all slots", func(t *testing.T) {
		before := wc.writes.Load()
		cmds, err := hammer(ctx, c, 64, 100, func(g, i int) string { return slotKey(fmt.Sprintf("g%d", g), g*100+i) })
		if err != nil {
			t.Fatal(err)
		}
		writes := wc.writes.Load() - before
		t.Logf("%d commands in %d connection writes (%.1f commands per write)", cmds, writes, float64(cmds)/float64(writes))
		// Without batching every command is one write; require at least 4 per write.
		if writes*4 > cmds {
			t.Fatalf("%d commands took %d writes: not pipelined", cmds, writes)
		}
	})

	t.Run("one failing command fails alone", func(t *testing.T) {
		bad := slotKey("list", 1)
		if err := c.LPush(ctx, bad, "x").Err(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var wrongType, other atomic.Int64
		start := make(chan struct{})
		for g := range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range 20 {
					k := slotKey(fmt.Sprintf("ok%d", g), g*20+i)
					if g%16 == 0 && i%5 == 0 {
						k = bad // GET on a list: WRONGTYPE, inside batches of good commands
					} else if err := c.Set(ctx, k, k, 0).Err(); err != nil {
						other.Add(1)
						t.Errorf("SET %s: %v", k, err)
						continue
					}
					v, err := c.Get(ctx, k).Result()
					switch {
					case k == bad && err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE"):
						wrongType.Add(1)
					case k == bad:
						other.Add(1)
						t.Errorf("GET of the list = %q, %v; want WRONGTYPE", v, err)
					case err != nil || v != k:
						other.Add(1)
						t.Errorf("GET %s = %q, %v", k, v, err)
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		if wrongType.Load() != 4*4 || other.Load() != 0 {
			t.Fatalf("%d WRONGTYPE (want 16), %d other failures (want 0)", wrongType.Load(), other.Load())
		}
	})

	t.Run("slot migrated mid-run", func(t *testing.T) {
		masters := rc.Masters()
		slot := 100 // served by masters[0] (slots 0-5460)
		key := func(g, i int) string {
			return "{" + cluster.KeyForSlot(slot) + "}" + strconv.Itoa(g) + "-" + strconv.Itoa(i%50)
		}
		// Keys exist on the source before the migration starts.
		if _, err := hammer(ctx, c, 16, 50, key); err != nil {
			t.Fatal(err)
		}
		src := masters[0].Client()
		defer src.Close()
		if err := src.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		stop := make(chan struct{})
		var rounds atomic.Int64
		go func() {
			for r := 0; ; r++ {
				select {
				case <-stop:
					done <- nil
					return
				default:
				}
				// Half the goroutines on the migrating slot, half on keys elsewhere.
				_, err := hammer(ctx, c, 32, 20, func(g, i int) string {
					if g%2 == 0 {
						return key(g, r*20+i)
					}
					return slotKey("mig", g*1000+i)
				})
				if err != nil {
					done <- err
					return
				}
				rounds.Add(1)
			}
		}()
		// Pause after each key so clients meet ASK for a while, then MOVED.
		if err := rc.MigrateSlot(ctx, masters[0], masters[1], slot, nil, func(string) { time.Sleep(time.Millisecond) }); err != nil {
			t.Error(err)
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		if err := <-done; err != nil {
			t.Fatalf("during the migration: %v", err)
		}
		if rounds.Load() < 2 {
			t.Fatalf("only %d rounds ran during the migration", rounds.Load())
		}
		if _, err := hammer(ctx, c, 64, 20, key); err != nil {
			t.Fatalf("after the migration: %v", err)
		}
		// The redirects really reached the autopipelined client (and were followed per command).
		stats, err := redistest.Info(ctx, src, "errorstats")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("source master errorstats: ASK %q, MOVED %q", stats["errorstat_ASK"], stats["errorstat_MOVED"])
		if stats["errorstat_ASK"] == "" || stats["errorstat_MOVED"] == "" {
			t.Fatalf("the migration produced no ASK or no MOVED replies: %v", stats)
		}
		if err := src.Get(ctx, key(0, 0)).Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED") || !strings.Contains(err.Error(), ".invalid:") {
			t.Fatalf("the old master should answer MOVED to an unreachable hostname, got %v", err)
		}
	})

	rec.AssertOnly(t, real...)
	if len(rec.Dialed()) == 0 {
		t.Fatal("nothing was dialed through the recorder")
	}
	// Close drains the autopipeliner and closes the client; commands then fail with ErrClosed.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.ErrClosed) {
		t.Fatalf("GET after Close = %v, want redis.ErrClosed", err)
	}
}

// autoPipeline through TLS and the map, from Options (cluster) and Options (standalone).
func TestAutoPipelineTLS(t *testing.T) {
	certs := redistest.NewTLS(t, redistest.TLSOptions{})
	material := &rtls.Material{CA: certs.CA.CertPEM, Cert: certs.Client.CertPEM, Key: certs.Client.KeyPEM}
	defaults := client.Options{Socket: client.Socket{TLS: true}, TLS: material}

	t.Run("cluster", func(t *testing.T) {
		ctx := testCtx(t)
		rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname, Server: redistest.ServerOptions{TLS: certs}})
		sm, err := cluster.StaticMap(rc.AddressMap())
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		wc := &writeCounter{base: rec.Dial}
		c, err := client.NewCluster(ctx, client.ClusterOptions{
			RootNodes: []string{"rediss://" + rc.Nodes[0].Announced}, Defaults: defaults,
			NodeAddressMap: sm, Dial: wc.Dial, AutoPipeline: true, MonitorInterval: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before := wc.writes.Load()
		cmds, err := hammer(ctx, c, 64, 50, func(g, i int) string { return slotKey("tls", g*50+i) })
		if err != nil {
			t.Fatal(err)
		}
		if writes := wc.writes.Load() - before; writes*4 > cmds {
			t.Fatalf("%d commands took %d TLS record writes: not pipelined", cmds, writes)
		}
		rec.AssertOnlyDialed(t, rc.AddressMap())
	})

	t.Run("standalone", func(t *testing.T) {
		ctx := testCtx(t)
		srv := redistest.StartServer(t, redistest.ServerOptions{TLS: certs})
		announced := "app-redis.rconn-test.invalid:6380"
		sm, err := cluster.StaticMap(map[string]string{announced: srv.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		wc := &writeCounter{base: rec.Dial}
		o := defaults
		o.URL, o.NodeAddressMap, o.Dial, o.AutoPipeline, o.MonitorInterval = "rediss://"+announced, sm, wc.Dial, true, time.Hour
		c, err := client.NewClient(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !c.AutoPipelining() {
			t.Fatal("autoPipeline is on but the client does not batch")
		}
		before := wc.writes.Load()
		cmds, err := hammer(ctx, c, 64, 50, func(g, i int) string { return fmt.Sprintf("k%d-%d", g, i) })
		if err != nil {
			t.Fatal(err)
		}
		if writes := wc.writes.Load() - before; writes*4 > cmds {
			t.Fatalf("%d commands took %d TLS record writes: not pipelined", cmds, writes)
		}
		// Direct bypasses the batching on the same connections and map.
		if err := c.Direct().Set(ctx, "direct", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		rec.AssertOnly(t, srv.Addr())
	})
}

// Without autoPipeline nothing changes: the client is the go-redis client itself.
func TestAutoPipelineOffByDefault(t *testing.T) {
	ctx := testCtx(t)
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c, err := client.NewClient(ctx, client.Options{URL: "redis://" + srv.Addr(), Dial: (&recorder{}).Dial, MonitorInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.AutoPipelining() || c.UniversalClient != c.Direct() {
		t.Fatal("autoPipeline is on without being asked for")
	}
}

// The AutoPipeliner outlives a server crash: batches fail while the server is down, and the
// same client batches again once it is back.
func TestAutoPipelineSurvivesRestart(t *testing.T) {
	ctx := testCtx(t)
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c, err := client.NewClient(ctx, client.Options{URL: "redis://" + srv.Addr(), Dial: (&recorder{}).Dial, AutoPipeline: true, MonitorInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := func(g, i int) string { return fmt.Sprintf("k%d-%d", g, i) }
	if _, err := hammer(ctx, c, 16, 20, key); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	waitFor(t, "IsReady false", func() error {
		if c.IsReady() {
			return errNotYet
		}
		return nil
	})
	if err := c.Get(ctx, "k0-0").Err(); err == nil {
		t.Fatal("GET succeeded with the server down")
	}
	srv.Restart(t)
	waitFor(t, "IsReady", func() error {
		if !c.IsReady() {
			return errNotYet
		}
		return nil
	})
	if _, err := hammer(ctx, c, 16, 20, key); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}
