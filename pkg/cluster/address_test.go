package cluster_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want cluster.URL
	}{
		{"redis://", cluster.URL{Address: cluster.Address{Host: "localhost", Port: 6379}}},
		{"redis://h", cluster.URL{Address: cluster.Address{Host: "h", Port: 6379}}},
		{"redis://h:7000", cluster.URL{Address: cluster.Address{Host: "h", Port: 7000}}},
		{"redis://:7000", cluster.URL{Address: cluster.Address{Host: "localhost", Port: 7000}}},
		{"redis://h:7000/", cluster.URL{Address: cluster.Address{Host: "h", Port: 7000}}},
		{"redis://h/3", cluster.URL{Address: cluster.Address{Host: "h", Port: 6379}, DB: 3}},
		{"rediss://h", cluster.URL{TLS: true, Address: cluster.Address{Host: "h", Port: 6379}}},
		{"REDISS://h", cluster.URL{TLS: true, Address: cluster.Address{Host: "h", Port: 6379}}},
		{"redis://alice@h", cluster.URL{Username: "alice", Address: cluster.Address{Host: "h", Port: 6379}}},
		{"redis://alice:foobared@awesome.redis.server:6380", cluster.URL{Username: "alice", Password: "foobared", Address: cluster.Address{Host: "awesome.redis.server", Port: 6380}}},
		{"redis://:p%40ss%3Aw0rd@h", cluster.URL{Password: "p@ss:w0rd", Address: cluster.Address{Host: "h", Port: 6379}}},
		{"redis://us%20er:pw@h", cluster.URL{Username: "us er", Password: "pw", Address: cluster.Address{Host: "h", Port: 6379}}},
		{"redis://[::1]", cluster.URL{Address: cluster.Address{Host: "::1", Port: 6379}}},
		{"redis://[::1]:7000/2", cluster.URL{Address: cluster.Address{Host: "::1", Port: 7000}, DB: 2}},
		{"redis://127.0.0.1:65535", cluster.URL{Address: cluster.Address{Host: "127.0.0.1", Port: 65535}}},
	} {
		got, err := cluster.ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if *got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, *got, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"localhost:6379", "want redis[s]://"},
		{"http://h", `unknown scheme "http"`},
		{"redis://h:0", "port 0 out of range 1-65535"},
		{"redis://h:70000", "port 70000 out of range 1-65535"},
		{"redis://h:99999999", "out of range"},
		{"redis://h:port", `port "port" is not a number`},
		{"redis://h:", "empty port"},
		{"redis://h/db", `database "db" is not a number`},
		{"redis://h/1/2", "only /db-number may follow"},
		{"redis://h?timeout=1", "query parameters are not supported"},
		{"redis://h#frag", "fragments are not supported"},
		{"redis://::1:6379", "IPv6 addresses go in brackets"},
		{"redis://[::1", "missing ']'"},
		{"redis://[nope]:1", "is not an IPv6 address"},
		{"redis://[::1]x", "unexpected"},
		{"redis://h st", "is not a DNS name or IP address"},
		{"redis://u:%zz@h", "bad percent-encoding in password"},
	} {
		_, err := cluster.ParseURL(tc.in)
		if err == nil || !errors.Is(err, cluster.ErrInvalidAddress) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q) = %v, want an ErrInvalidAddress containing %q", tc.in, err, tc.want)
		}
	}
}

func TestErrorsNeverCarryThePassword(t *testing.T) {
	for _, in := range []string{"redis://alice:hunter2@h:0", "redis://:hunter2@h?x", "http://a:hunter2@h", "redis://a:hunter2@[::1"} {
		_, err := cluster.ParseURL(in)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseURL(%q) error leaks the password: %v", in, err)
		}
	}
	u, err := cluster.ParseURL("rediss://alice:hunter2@h:7000/1")
	if err != nil || strings.Contains(u.String(), "hunter2") || u.String() != "rediss://alice:xxxxx@h:7000/1" {
		t.Errorf("String() = %q, %v", u, err)
	}
}

func TestSlot(t *testing.T) {
	// Values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT.
	for key, want := range map[string]int{"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "{user1000}.followers": 3443} {
		if got := cluster.Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	for _, s := range []int{0, 1, 8191, 16383} {
		if got := cluster.Slot(cluster.KeyForSlot(s)); got != s {
			t.Errorf("KeyForSlot(%d) hashes to %d", s, got)
		}
	}
}

// FuzzParseURL: never panics; accepted URLs have a port in range and round-trip through String.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"redis://", "rediss://u:p@h:1/2", "redis://[::1]:6379", "redis://h:0", "redis://%zz@h", "redis://[", "redis://a:b:c", "redis://h/00000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := cluster.ParseURL(s)
		if err != nil {
			if !errors.Is(err, cluster.ErrInvalidAddress) {
				t.Fatalf("error without ErrInvalidAddress: %v", err)
			}
			return
		}
		if u.Address.Port < 1 || u.Address.Port > 65535 || u.Address.Host == "" || u.DB < 0 {
			t.Fatalf("ParseURL(%q) accepted %+v", s, u)
		}
		if u.Password == "" {
			again, err := cluster.ParseURL(u.String())
			if err != nil {
				t.Fatalf("String() of %q = %q does not parse: %v", s, u.String(), err)
			}
			if again.Address != u.Address || again.DB != u.DB || again.TLS != u.TLS {
				t.Fatalf("round trip of %q: %+v != %+v", s, again, u)
			}
		}
	})
}
