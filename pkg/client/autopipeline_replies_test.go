package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// replyCheck issues one caller's round of commands whose replies name the command they answer:
// a value that spells its own key, caller and round; a counter only that caller increments, by
// a step only that caller uses; a miss; and a WRONGTYPE on the caller's own list. A reply that
// reached the wrong caller (or the wrong command of the right caller) fails at least one check.
func replyCheck(ctx context.Context, c redis.Cmdable, g, i int, key string) error {
	v := fmt.Sprintf("%s=%d/%d", key, g, i)
	ctr, list := slotKey("ctr"+strconv.Itoa(g), g), slotKey("list"+strconv.Itoa(g), g+1)
	if got, err := c.Set(ctx, key, v, 0).Result(); err != nil || got != "OK" {
		return fmt.Errorf("caller %d round %d: SET %s = %q, %w", g, i, key, got, err)
	}
	if got, err := c.Get(ctx, key).Result(); err != nil || got != v {
		return fmt.Errorf("caller %d round %d: GET %s = %q, %w; want %q", g, i, key, got, err, v)
	}
	if got, err := c.IncrBy(ctx, ctr, int64(g+1)).Result(); err != nil || got != int64(i+1)*int64(g+1) {
		return fmt.Errorf("caller %d round %d: INCRBY %s = %d, %w; want %d", g, i, ctr, got, err, (i+1)*(g+1))
	}
	if got, err := c.Get(ctx, key+":missing").Result(); !errors.Is(err, redis.Nil) {
		return fmt.Errorf("caller %d round %d: GET of a missing key = %q, %w; want redis.Nil", g, i, got, err)
	}
	if i == 0 {
		if err := c.RPush(ctx, list, g).Err(); err != nil {
			return fmt.Errorf("caller %d: RPUSH %s: %w", g, list, err)
		}
	}
	if got, err := c.Get(ctx, list).Result(); err == nil || !isWrongType(err) {
		return fmt.Errorf("caller %d round %d: GET of a list = %q, %w; want WRONGTYPE", g, i, got, err)
	}
	if got, err := c.LIndex(ctx, list, 0).Result(); err != nil || got != strconv.Itoa(g) {
		return fmt.Errorf("caller %d round %d: LINDEX %s 0 = %q, %w; want %d", g, i, list, got, err, g)
	}
	return nil
}

func isWrongType(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && len(re.Error()) >= 9 && re.Error()[:9] == "WRONGTYPE"
}

// Every reply reaches the caller whose command it answers, and that command: 64 callers on
// distinct keys over all slots, batched (several commands per write), while three slots move
// from one master to another with the live-resharding protocol, so that batches carry
// commands that come back ASK and MOVED and are redirected one by one by go-redis.
func TestAutoPipelineRepliesReachTheirCallers(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc, c, wc, _ := batchedCluster(t)
	masters := rc.Masters()
	migrating := []int{101, 2002, 4003} // served by masters[0] (slots 0-5460)
	const callers, rounds = 64, 120
	key := func(g, i int) string {
		if g%2 == 0 { // half the callers on the slots that move
			return "{" + cluster.KeyForSlot(migrating[g%len(migrating)]) + "}" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
		}
		return slotKey("k"+strconv.Itoa(g)+"-"+strconv.Itoa(i), g*rounds+i)
	}
	src := masters[0].Client()
	t.Cleanup(func() { _ = src.Close() })
	if err := src.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := wc.writes.Load()
	var cmds atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, callers+1)
	start := make(chan struct{})
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range rounds {
				cmds.Add(6)
				if err := replyCheck(ctx, c, g, i, key(g, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for _, slot := range migrating {
			// A pause after each key: clients meet ASK for a while, then MOVED.
			if err := rc.MigrateSlot(ctx, masters[0], masters[1], slot, nil, func(string) { time.Sleep(time.Millisecond) }); err != nil {
				errs <- fmt.Errorf("migrating slot %d: %w", slot, err)
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	requireBatched(t, wc, before, cmds.Load())
	stats, err := redistest.Info(ctx, src, "errorstats")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("source master errorstats: ASK %q, MOVED %q", stats["errorstat_ASK"], stats["errorstat_MOVED"])
	if stats["errorstat_MOVED"] == "" {
		t.Fatalf("no command came back MOVED: the redirects were not exercised (%v)", stats)
	}
}

// The same on a standalone server: every reply reaches its caller (no redirects there).
func TestAutoPipelineRepliesReachTheirCallersStandalone(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	wc := &writeCounter{base: (&recorder{}).Dial}
	c, err := client.NewClient(ctx, client.Options{
		URL: "redis://" + srv.Addr(), Dial: wc.Dial, AutoPipeline: true, MonitorInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	const callers, rounds = 64, 120
	before := wc.writes.Load()
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := replyCheck(ctx, c, g, i, "k"+strconv.Itoa(g)+"-"+strconv.Itoa(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	requireBatched(t, wc, before, callers*rounds*6)
}

// Blocking commands never hold a batch: BLPOP 0 and XREAD BLOCK 0 wait on a node while every
// other caller's commands on that node go on batching around them, and they return as soon as
// something is pushed. If the batching took a blocking command as an ordinary one, everything
// issued on its node after it would wait behind it (until the push that never comes).
func TestAutoPipelineBlockingCommandsRunApart(t *testing.T) {
	t.Parallel() // its own servers and client: overlaps the other tests' waits
	ctx := testCtx(t)
	rc, c, wc, _ := batchedCluster(t)
	list, stream := slotKey("blocked-list", 11), slotKey("blocked-stream", 11) // the same node as below
	blpop := make(chan error, 1)
	go func() {
		v, err := c.BLPop(ctx, 0, list).Result()
		if err == nil && (len(v) != 2 || v[1] != "pushed") {
			err = fmt.Errorf("BLPOP = %v", v)
		}
		blpop <- err
	}()
	xread := make(chan error, 1)
	go func() {
		v, err := c.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, "$"}, Block: 0}).Result()
		if err == nil && (len(v) != 1 || len(v[0].Messages) != 1) {
			err = fmt.Errorf("XREAD = %v", v)
		}
		xread <- err
	}()
	// Both are blocked on the server before the load starts (not one queued behind the other).
	for deadline := time.Now().Add(10 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("BLPOP and XREAD BLOCK did not both reach the server: one waits behind the other")
		}
		var n string
		for _, m := range rc.Masters() {
			mc := m.Client()
			l, err := mc.ClientList(ctx).Result()
			_ = mc.Close()
			if err != nil {
				t.Fatal(err)
			}
			n += l
		}
		if strings.Count(n, "cmd=blpop") == 1 && strings.Count(n, "cmd=xread") == 1 {
			break
		}
		select {
		case err := <-blpop:
			t.Fatalf("BLPOP returned before anything was pushed: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	before := wc.writes.Load()
	hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := hammer(hctx, c, 64, 50, func(g, i int) string { return slotKey(fmt.Sprintf("around%d-%d", g, i), 11) })
	if err != nil {
		t.Fatalf("commands on the blocked node: %v", err)
	}
	requireBatched(t, wc, before, n)
	if err := c.RPush(ctx, list, "pushed").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []string{"f", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"BLPOP": blpop, "XREAD BLOCK": xread} {
		if err := <-ch; err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
