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

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
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
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	cfg, dialed := mappedConfig(rc)
	cfg.Rconn.AutoPipeline = true
	m := newMount(t, map[string][]byte{client.ConfigFileName: render(t, cfg)})
	rec := &recorder{}
	wc := &writeCounter{base: rec.Dial}
	c, err := client.OpenOptions{Dial: wc.Dial, MonitorInterval: time.Hour}.Open(ctx, m.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
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
		defer func() { _ = src.Close() }()
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

	rec.AssertOnly(t, dialed...)
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
	t.Parallel() // its own servers and client: overlaps the other tests' waits
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
		defer func() { _ = c.Close() }()
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
		defer func() { _ = c.Close() }()
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
	defer func() { _ = c.Close() }()
	if c.AutoPipelining() {
		t.Fatal("autoPipeline is on without being asked for")
	}
}

// Batching outlives a server crash: commands fail while the server is down, and the
// same client batches again once it is back.
func TestAutoPipelineSurvivesRestart(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c, err := client.NewClient(ctx, client.Options{URL: "redis://" + srv.Addr(), Dial: (&recorder{}).Dial, AutoPipeline: true, MonitorInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
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

// batchedCluster is a 3-master cluster announcing unreachable hostnames, and an autoPipeline
// client on it through the map, counting connection writes.
func batchedCluster(t *testing.T) (*redistest.Cluster, *client.Client, *writeCounter, *recorder) {
	t.Helper()
	ctx := testCtx(t)
	rc := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, Announce: redistest.AnnounceHostname})
	sm, err := cluster.StaticMap(rc.AddressMap())
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	wc := &writeCounter{base: rec.Dial}
	c, err := client.NewCluster(ctx, client.ClusterOptions{
		RootNodes: []string{"redis://" + rc.Nodes[0].Announced}, NodeAddressMap: sm,
		Dial: wc.Dial, AutoPipeline: true, MonitorInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return rc, c, wc, rec
}

// requireBatched fails unless the commands since before went out at least 4 per write, so
// that the assertions next to it were made on batches, not on lone commands.
func requireBatched(t *testing.T, wc *writeCounter, before, cmds int64) {
	t.Helper()
	writes := wc.writes.Load() - before
	t.Logf("%d commands in %d writes", cmds, writes)
	if writes*4 > cmds {
		t.Fatalf("%d commands took %d writes: not batched, the test proves nothing", cmds, writes)
	}
}

// Each caller's commands run in the order it issued them, on its own keys and on a key that
// every caller shares, while they ride batches with everyone else's.
func TestAutoPipelineOrderPerCaller(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	_, c, wc, _ := batchedCluster(t)
	const callers, n = 64, 100
	shared := "{shared}order"
	before := wc.writes.Load()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := slotKey(fmt.Sprintf("order%d", g), g)
			for i := range n {
				if err := c.RPush(ctx, own, i).Err(); err != nil {
					errs <- err
					return
				}
				if err := c.RPush(ctx, shared, fmt.Sprintf("%d:%d", g, i)).Err(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	requireBatched(t, wc, before, 2*callers*n)
	for g := range callers {
		got, err := c.LRange(ctx, slotKey(fmt.Sprintf("order%d", g), g), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			if v != strconv.Itoa(i) {
				t.Fatalf("caller %d: element %d is %s (list %v)", g, i, v, got)
			}
		}
		if len(got) != n {
			t.Fatalf("caller %d: %d elements, want %d", g, len(got), n)
		}
	}
	all, err := c.LRange(ctx, shared, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	next := make([]int, callers)
	for _, e := range all {
		gs, is, _ := strings.Cut(e, ":")
		g, _ := strconv.Atoi(gs)
		i, _ := strconv.Atoi(is)
		if i != next[g] {
			t.Fatalf("shared list: caller %d's element %d came where %d was due", g, i, next[g])
		}
		next[g]++
	}
	if len(all) != callers*n {
		t.Fatalf("shared list has %d elements, want %d", len(all), callers*n)
	}
}

// In one batch every command gets its own reply: a value, redis.Nil, WRONGTYPE, or ERR.
func TestAutoPipelineRepliesPerCommand(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	_, c, wc, _ := batchedCluster(t)
	list, text := slotKey("list", 3), slotKey("text", 5)
	if err := c.RPush(ctx, list, "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, text, "abc", 0).Err(); err != nil {
		t.Fatal(err)
	}
	const callers, n = 64, 100
	before := wc.writes.Load()
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				k := slotKey(fmt.Sprintf("r%d", g), g*n+i)
				var err error
				switch i % 4 {
				case 0: // a value
					if err = c.Set(ctx, k, k, 0).Err(); err == nil {
						var v string
						if v, err = c.Get(ctx, k).Result(); err == nil && v != k {
							err = fmt.Errorf("GET %s = %q", k, v)
						}
					}
				case 1: // missing
					if err = c.Get(ctx, k+"-missing").Err(); errors.Is(err, redis.Nil) {
						err = nil
					} else {
						err = fmt.Errorf("GET missing = %w, want redis.Nil", err)
					}
				case 2: // WRONGTYPE
					if err = c.Get(ctx, list).Err(); err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
						err = nil
					} else {
						err = fmt.Errorf("GET list = %w, want WRONGTYPE", err)
					}
				case 3: // ERR
					if err = c.Incr(ctx, text).Err(); err != nil && strings.HasPrefix(err.Error(), "ERR") {
						err = nil
					} else {
						err = fmt.Errorf("INCR text = %w, want ERR", err)
					}
				}
				if err != nil {
					failures.Add(1)
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.FailNow()
	}
	requireBatched(t, wc, before, callers*n*5/4)
}

// WATCH/MULTI/EXEC (Watch) runs on its own connection while other callers' commands batch:
// optimistic locking still works, so concurrent increments through Watch lose nothing.
func TestAutoPipelineWatchUnderLoad(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	_, c, wc, _ := batchedCluster(t)
	counter := slotKey("counter", 7)
	stop := make(chan struct{})
	load := make(chan error, 1)
	before := wc.writes.Load()
	var loadCmds atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				load <- nil
				return
			default:
			}
			// Same slot as the counter: the batches go to the same node.
			n, err := hammer(ctx, c, 64, 20, func(g, _ int) string { return "{" + counter + "}" + strconv.Itoa(g) })
			loadCmds.Add(n)
			if err != nil {
				load <- err
				return
			}
		}
	}()
	const workers, incrs = 8, 25
	var done, attempts atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range incrs {
				for {
					attempts.Add(1)
					err := c.Watch(ctx, func(tx *redis.Tx) error {
						v, err := tx.Get(ctx, counter).Int()
						if err != nil && !errors.Is(err, redis.Nil) {
							return err
						}
						_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Set(ctx, counter, v+1, 0)
							return nil
						})
						return err
					}, counter)
					if err == nil {
						done.Add(1)
						break
					}
					if !errors.Is(err, redis.TxFailedErr) {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-load; err != nil {
		t.Fatal(err)
	}
	// A Watch attempt writes up to 4 times (WATCH, GET, MULTI..EXEC, UNWATCH) and is never
	// batched; the load must still have gone out in batches, at least 2 commands per write
	// over everything.
	cmds, writes := loadCmds.Load()+4*attempts.Load(), wc.writes.Load()-before
	t.Logf("%d load commands and %d Watch attempts in %d writes", loadCmds.Load(), attempts.Load(), writes)
	if writes*2 > cmds {
		t.Fatalf("%d writes for %d commands: the load was not batched, the test proves nothing", writes, cmds)
	}
	got, err := c.Get(ctx, counter).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if got != done.Load() || got != workers*incrs {
		t.Fatalf("counter = %d after %d committed increments (want %d): WATCH did not guard EXEC", got, done.Load(), workers*incrs)
	}
}

// Connections killed by the servers mid-batch: no caller ever gets another caller's reply, the
// client reconnects by itself, and batching goes on.
func TestAutoPipelineReconnect(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc, c, wc, _ := batchedCluster(t)
	key := func(g, i int) string { return slotKey(fmt.Sprintf("rc%d", g), g*1000+i) }
	stop := make(chan struct{})
	load := make(chan error, 1)
	var rounds atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				load <- nil
				return
			default:
			}
			if _, err := hammer(ctx, c, 64, 20, key); err != nil && strings.Contains(err.Error(), "want") {
				load <- err // a wrong value: replies went to the wrong caller
				return
			}
			rounds.Add(1)
		}
	}()
	var killed int64
	for range 5 {
		for _, n := range rc.Masters() {
			admin := n.Client()
			k, err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result()
			_ = admin.Close()
			if err != nil {
				t.Fatal(err)
			}
			killed += k
		}
		for r := rounds.Load(); rounds.Load() < r+2; {
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stop)
	if err := <-load; err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no client connection was killed: the test proves nothing")
	}
	t.Logf("%d connections killed over %d rounds", killed, rounds.Load())
	before := wc.writes.Load()
	cmds, err := hammer(ctx, c, 64, 50, key)
	if err != nil {
		t.Fatalf("after the kills: %v", err)
	}
	requireBatched(t, wc, before, cmds)
}

// A new node address map mid-load: commands keep their replies, connections move to the new
// targets, and batches then go only there.
func TestAutoPipelineMapChange(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc, c, wc, rec := batchedCluster(t)
	key := func(g, i int) string { return slotKey(fmt.Sprintf("mc%d", g), g*1000+i) }
	if _, err := hammer(ctx, c, 64, 10, key); err != nil {
		t.Fatal(err)
	}
	proxies := map[string]*proxy{}
	m := map[string]string{}
	var targets []string
	for announced, addr := range rc.AddressMap() {
		p := startProxy(t, addr)
		proxies[announced], m[announced] = p, p.Addr()
		targets = append(targets, p.Addr())
	}
	sm, err := cluster.StaticMap(m)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	load := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				load <- nil
				return
			default:
			}
			if _, err := hammer(ctx, c, 64, 20, key); err != nil {
				load <- err
				return
			}
		}
	}()
	rec.Reset()
	c.SetNodeAddressMap(sm)
	waitFor(t, "connections through every new target", func() error {
		for a, p := range proxies {
			if p.Accepted.Load() == 0 {
				return fmt.Errorf("%s: %w", a, errNotYet)
			}
		}
		return nil
	})
	close(stop)
	if err := <-load; err != nil {
		t.Fatalf("during the map change: %v", err)
	}
	rec.Reset()
	before := wc.writes.Load()
	cmds, err := hammer(ctx, c, 64, 50, key)
	if err != nil {
		t.Fatal(err)
	}
	requireBatched(t, wc, before, cmds)
	rec.AssertOnly(t, targets...)
}
