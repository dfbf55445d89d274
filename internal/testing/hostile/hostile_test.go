package hostile_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

func TestMain(m *testing.M) { nettest.RunWithoutDNS(m) }

func dial(t *testing.T, s *hostile.Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

const ping = "*1\r\n$4\r\nPING\r\n"

func TestFixedReplyAnswersEveryCommandPipelined(t *testing.T) {
	s := hostile.FixedReply(t, hostile.HugeArray)
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr %s is not loopback", s.Addr())
	}
	c := dial(t, s)
	if _, err := io.WriteString(c, ping+ping+"PING\r\n"); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat(hostile.HugeArray, 3)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if s.Commands() != 3 || s.Accepted() != 1 {
		t.Fatalf("commands %d accepted %d, want 3 and 1", s.Commands(), s.Accepted())
	}
}

func TestSilentNeverAnswers(t *testing.T) {
	s := hostile.Silent(t)
	c := dial(t, s)
	if _, err := io.WriteString(c, ping); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 16))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != 0 {
		t.Fatalf("read %d bytes, %v; want a deadline error and nothing", n, err)
	}
}

func TestGarbageSendsBannerOnAccept(t *testing.T) {
	s := hostile.Garbage(t, hostile.SSHBanner)
	c := dial(t, s)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != hostile.SSHBanner {
		t.Fatalf("got %q, %v", line, err)
	}
}

func TestCloseOnAcceptGivesEOF(t *testing.T) {
	s := hostile.CloseOnAccept(t)
	c := dial(t, s)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v, want EOF", err)
	}
}

// TestSlowMinimalRedisIsAPlausibleClusterNode: go-redis parses every reply of MinimalRedis,
// and the delay is applied (and interrupted by Close).
func TestSlowMinimalRedisIsAPlausibleClusterNode(t *testing.T) {
	s := hostile.Slow(t, 50*time.Millisecond, nil)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, DisableIdentity: true, MaxRetries: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil || len(shards) != 1 || len(shards[0].Nodes) != 1 || shards[0].Nodes[0].Endpoint != "127.0.0.1" || shards[0].Slots[0].End != 16383 {
		t.Fatalf("CLUSTER SHARDS = %+v, %v", shards, err)
	}
	slots, err := c.ClusterSlots(ctx).Result() //nolint:staticcheck // CLUSTER SLOTS is what is under test here, next to SHARDS
	if err != nil || len(slots) != 1 || slots[0].Nodes[0].Addr != s.Addr() {
		t.Fatalf("CLUSTER SLOTS = %+v, %v", slots, err)
	}
	if info, err := c.ClusterInfo(ctx).Result(); err != nil || !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("CLUSTER INFO = %q, %v", info, err)
	}
	if role, err := c.Do(ctx, "ROLE").Slice(); err != nil || role[0] != "master" {
		t.Fatalf("ROLE = %v, %v", role, err)
	}
	// Close interrupts a pending delay rather than waiting it out.
	slow := hostile.Slow(t, time.Hour, nil)
	conn := dial(t, slow)
	if _, err := io.WriteString(conn, ping); err != nil {
		t.Fatal(err)
	}
	for slow.Commands() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { slow.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the delay")
	}
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after Close")
	}
}

func TestCloseStopsListenerAndConnections(t *testing.T) {
	s, err := hostile.Start(hostile.Config{Silent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	c := dial(t, s)
	for s.Accepted() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	s.Close() // idempotent
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection open after Close")
	}
	if c2, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		_ = c2.Close()
		t.Fatal("still listening after Close")
	}
}

func TestNested(t *testing.T) {
	if got := hostile.Nested(2); got != "*1\r\n*1\r\n:1\r\n" {
		t.Fatalf("Nested(2) = %q", got)
	}
}

// TestStreamPushesUntilClosed: after the SUBSCRIBE confirmations, a Stream server pushes its
// message again and again on the same connection, and Close ends it.
func TestStreamPushesUntilClosed(t *testing.T) {
	msg := hostile.Message("+switch-master", "mymaster a 1 b 2")
	s := hostile.MustStart(t, hostile.Config{Handler: hostile.Subscribing(nil), Stream: msg, StreamCommand: "SUBSCRIBE"})
	c := dial(t, s)
	if _, err := io.WriteString(c, "*3\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n$3\r\nch2\r\n"); err != nil {
		t.Fatal(err)
	}
	want := string(hostile.SubscribeConfirm("ch", "ch2")) + strings.Repeat(string(msg), 100)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got %q", got)
	}
	s.Close()
	if s.Streamed() < 100 {
		t.Fatalf("Streamed %d, want at least 100", s.Streamed())
	}
}
