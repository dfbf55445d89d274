package cluster

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
)

// replayConn returns the same reply forever, in Reads of at most 32 KiB (go-redis's buffer).
type replayConn struct {
	net.Conn
	reply []byte
	off   int
}

func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }

func (c *replayConn) Read(p []byte) (int, error) {
	p = p[:min(len(p), 32<<10)]
	n := copy(p, c.reply[c.off:])
	c.off = (c.off + n) % len(c.reply)
	return n, nil
}

// BenchmarkLimitConn compares reading the same CLUSTER SHARDS reply (100 shards of 3 nodes,
// about 100 KB) plain and through LimitConn, in one run:
//
//	go test ./pkg/cluster -run '^$' -bench LimitConn -benchmem
//
// "read" isolates the validator (Read calls only); "go-redis" is a whole ClusterShards call
// against a loopback server answering with that reply, with and without the wrapper.
func BenchmarkLimitConn(b *testing.B) {
	reply := shardsReply(100, 3)
	buf := make([]byte, 32<<10)
	for _, wrapped := range []bool{false, true} {
		name := "read/plain"
		if wrapped {
			name = "read/limited"
		}
		b.Run(name, func(b *testing.B) {
			var c net.Conn = &replayConn{reply: reply}
			if wrapped {
				c = LimitConn(c, nil)
			}
			b.SetBytes(int64(len(reply)))
			b.ReportAllocs()
			b.ResetTimer()
			req := []byte("*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n")
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				for left := len(reply); left > 0; {
					n, err := c.Read(buf[:min(len(buf), left)])
					if err != nil {
						b.Fatal(err)
					}
					left -= n
				}
			}
		})
	}
	srv := hostile.Slow(b, 0, func(r hostile.Request) []byte {
		if r.Name() == "CLUSTER SHARDS" {
			return reply
		}
		return hostile.MinimalRedis(r)
	})
	for _, wrapped := range []bool{false, true} {
		name := "go-redis/plain"
		if wrapped {
			name = "go-redis/limited"
		}
		b.Run(name, func(b *testing.B) {
			c := redis.NewClient(&redis.Options{
				Addr: srv.Addr(),
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					var d net.Dialer
					conn, err := d.DialContext(ctx, network, addr)
					if err != nil || !wrapped {
						return conn, err
					}
					return LimitConn(conn, nil), nil
				},
				Protocol: 2, DisableIdentity: true, MaxRetries: -1, PoolSize: 1, ReadTimeout: 10 * time.Second,
				MaintNotificationsConfig: NoMaintNotifications(),
			})
			defer func() { _ = c.Close() }()
			ctx := context.Background()
			b.SetBytes(int64(len(reply)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if s, err := c.ClusterShards(ctx).Result(); err != nil || len(s) != 100 {
					b.Fatalf("%d shards, %v", len(s), err)
				}
			}
		})
	}
}
