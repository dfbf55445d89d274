package dnsflag

import (
	"context"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/nettest"
)

func TestMain(m *testing.M) { nettest.RunWithoutDNS(m) }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", false},
		{"127.0.0.1:53", "127.0.0.1:53", true},
		{"10.96.0.10:5353", "10.96.0.10:5353", true},
		{"[::1]:53", "[::1]:53", true},
		{"[fd00::a]:53", "[fd00::a]:53", true},
	} {
		got, ok, err := Parse(tc.in)
		if err != nil || ok != tc.ok || (ok && got.String() != tc.want) {
			t.Errorf("Parse(%q) = %v, %v, %v; want %s, %v", tc.in, got, ok, err, tc.want, tc.ok)
		}
	}
	for _, in := range []string{
		"127.0.0.1",          // no port
		"kube-dns:53",        // a name would need DNS
		"localhost:53",       //
		"127.0.0.1:0",        // port 0
		"0.0.0.0:53",         // unspecified
		"[::]:53",            //
		"::1:53",             // IPv6 without brackets
		"127.0.0.1:53:53",    //
		"127.0.0.1:65536",    //
		"udp://127.0.0.1:53", //
		" 127.0.0.1:53",      //
	} {
		if got, ok, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, %v; want an error", in, got, ok)
		}
	}
}

// fakeDNS answers every A query on loopback UDP with 198.18.0.5 and counts the queries.
func fakeDNS(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	var n atomic.Int64
	go func() {
		buf := make([]byte, 512)
		for {
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			n.Add(1)
			q := buf[:m]
			if len(q) < 12 {
				continue
			}
			end := 12
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			end += 5 // root label, type, class
			if end > len(q) {
				continue
			}
			resp := append([]byte(nil), q[:end]...)
			resp[2], resp[3] = 0x85, 0x80 // QR, AA, RD, RA; NOERROR
			binary.BigEndian.PutUint16(resp[6:8], 1)
			binary.BigEndian.PutUint16(resp[8:10], 0)
			binary.BigEndian.PutUint16(resp[10:12], 0)
			resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 198, 18, 0, 5)
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String(), &n
}

func TestInstall(t *testing.T) {
	addr, queries := fakeDNS(t)
	saved := net.DefaultResolver
	t.Cleanup(func() { net.DefaultResolver = saved })

	if got, err := Install(""); err != nil || got != "" || net.DefaultResolver != saved {
		t.Fatalf("Install(\"\") = %q, %v; want the resolver left alone", got, err)
	}
	if _, err := Install("dns.example:53"); err == nil || net.DefaultResolver != saved {
		t.Fatalf("Install of a name: %v; want an error and the resolver left alone", err)
	}
	got, err := Install(addr)
	if err != nil || got != addr {
		t.Fatalf("Install(%q) = %q, %v", addr, got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// net.DefaultResolver is what net.Dialer and every client use when given no resolver.
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", "redis-0.redis-headless.ns.svc.cluster.local.")
	if err != nil || len(ips) != 1 || ips[0].String() != "198.18.0.5" {
		t.Fatalf("lookup through the installed resolver: %v, %v", ips, err)
	}
	if queries.Load() == 0 {
		t.Fatal("the fake server saw no query")
	}
}
