package cluster_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/internal/testing/hostile"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// shardsNaming answers CLUSTER SHARDS with one master announcing endpoint and id, and
// everything else like a minimal Redis.
func shardsNaming(endpoint, id string) hostile.Handler {
	bulk := func(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }
	return func(req hostile.Request) []byte {
		if req.Name() != "CLUSTER SHARDS" {
			return hostile.MinimalRedis(req)
		}
		node := "*10\r\n" + bulk("id") + bulk(id) + bulk("port") + ":6379\r\n" + bulk("endpoint") + bulk(endpoint) +
			bulk("role") + bulk("master") + bulk("health") + bulk("online")
		return []byte("*1\r\n*4\r\n" + bulk("slots") + "*2\r\n:0\r\n:16383\r\n" + bulk("nodes") + "*1\r\n" + node)
	}
}

// TestTopologyWithImpossibleNodesIsRejected: node addresses and IDs a server announces end up in
// status (status.nodes[].announced, .id); a server that puts arbitrary bytes there (a banner, a
// secret, a megabyte) is rejected as ErrInvalidTopology with a fixed message, instead of having
// them echoed (or breaking every status patch with a value over the schema's maxLength).
func TestTopologyWithImpossibleNodesIsRejected(t *testing.T) {
	const goodID = "0123456789abcdef0123456789abcdef01234567"
	for name, tc := range map[string]struct{ endpoint, id string }{
		"banner as hostname": {"HTTP/1.1 400 " + hostile.Secret, goodID},
		"spaces in hostname": {"node 1.example.invalid", goodID},
		"control bytes":      {"node-1\x00.invalid", goodID},
		"hostname over 253":  {strings.Repeat("a", 300) + ".invalid", goodID},
		"id that is not hex": {"node-1.example.invalid", "zz" + hostile.Secret},
		"id over 64 hex":     {"node-1.example.invalid", strings.Repeat("a", 100)},
	} {
		t.Run(name, func(t *testing.T) {
			srv := hostile.MustStart(t, hostile.Config{Handler: shardsNaming(tc.endpoint, tc.id)})
			in := hostileInspector(t, cluster.Options{}, srv.Addr())
			_, err := in.Discover(testCtx(t))
			if !errors.Is(err, cluster.ErrInvalidTopology) {
				t.Fatalf("Discover = %v, want ErrInvalidTopology", err)
			}
			class, msg := cluster.Classify(err)
			if class != cluster.ClassInvalidReply || strings.Contains(msg, hostile.Secret) || strings.Contains(msg, "HTTP") {
				t.Fatalf("Classify = %s, %q", class, msg)
			}
		})
	}
	t.Run("a valid name passes", func(t *testing.T) {
		srv := hostile.MustStart(t, hostile.Config{Handler: shardsNaming("node-1.example.invalid", goodID)})
		in := hostileInspector(t, cluster.Options{}, srv.Addr())
		topo, err := in.Discover(testCtx(t))
		if err != nil || len(topo.Nodes) != 1 || topo.Nodes[0].Announced != "node-1.example.invalid:6379" {
			t.Fatalf("Discover = %+v, %v", topo, err)
		}
	})
}
