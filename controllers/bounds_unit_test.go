package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func nn(name string) types.NamespacedName { return types.NamespacedName{Namespace: "t", Name: name} }

func TestEventLimiterBoundsEventsPerRedisConnection(t *testing.T) {
	l := &eventLimiter{burst: 3, every: time.Minute}
	now := time.Unix(1000, 0)
	a, b := nn("a"), nn("b")
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow(a, now); !ok {
			t.Fatalf("event %d within the burst was dropped", i)
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.allow(a, now); ok {
			t.Fatalf("event %d past the burst was recorded", i)
		}
	}
	if ok, _ := l.allow(b, now); !ok {
		t.Fatal("another RedisConnection's Event was dropped because of a's flood")
	}
	ok, dropped := l.allow(a, now.Add(time.Minute))
	if !ok || dropped != 5 {
		t.Fatalf("after a refill: ok=%v dropped=%d, want true 5", ok, dropped)
	}
	l.forget(a)
	l.forget(b)
	if l.size() != 0 {
		t.Fatalf("forget left %d limiters", l.size())
	}
}

func TestSecretMemoKeepsOnlyReferencedSecrets(t *testing.T) {
	var m secretMemo
	s1, s2 := nn("s1"), nn("s2")
	rcA, rcB := nn("a"), nn("b")
	m.use(rcA, []types.NamespacedName{s1})
	m.use(rcB, []types.NamespacedName{s1, s2})
	m.put(s1, &corev1.Secret{})
	m.put(s2, &corev1.Secret{})
	m.put(nn("unreferenced"), &corev1.Secret{})
	if m.size() != 2 {
		t.Fatalf("memo holds %d Secrets, want the 2 referenced ones", m.size())
	}
	m.use(rcB, []types.NamespacedName{s1}) // b stops referencing s2
	if m.get(s2) != nil {
		t.Fatal("s2 is still memoized after its last reference went")
	}
	m.release(rcA)
	if m.get(s1) == nil {
		t.Fatal("s1 dropped while b still references it")
	}
	m.release(rcB)
	if m.size() != 0 || len(m.count) != 0 || len(m.refs) != 0 {
		t.Fatalf("after every release: %d Secrets, %d counts, %d refs", m.size(), len(m.count), len(m.refs))
	}
}

func TestCacheTransformStripsManagedFieldsAndLastApplied(t *testing.T) {
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name:          "s",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		Annotations:   map[string]string{lastAppliedAnnotation: `{"data":{"password":"c2VjcmV0"}}`, "keep": "me"},
	}}
	out, err := CacheTransform()(sec)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Secret)
	if got.ManagedFields != nil {
		t.Error("managedFields kept")
	}
	if _, ok := got.Annotations[lastAppliedAnnotation]; ok {
		t.Error("last-applied-configuration kept (it holds the Secret's data)")
	}
	if got.Annotations["keep"] != "me" {
		t.Error("another annotation was dropped")
	}
	only := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{lastAppliedAnnotation: "{}"}}}
	if _, err := CacheTransform()(only); err != nil || only.Annotations != nil {
		t.Errorf("metadata-only object: annotations %v, err %v", only.Annotations, err)
	}
}

func TestProbeRetryBackoff(t *testing.T) {
	maxAge := 15 * time.Second
	for _, tc := range []struct {
		failures int
		err      error
		want     time.Duration
	}{
		{0, nil, maxAge},
		{1, fmt.Errorf("x"), 500 * time.Millisecond},
		{2, fmt.Errorf("x"), time.Second},
		{4, fmt.Errorf("x"), 4 * time.Second},
		{6, fmt.Errorf("x"), maxAge},
		{1000, fmt.Errorf("x"), maxAge},
		// A degraded probe (no error, some node unhealthy) counts as a failure for the schedule.
		{1, nil, 500 * time.Millisecond},
		{3, nil, 2 * time.Second},
	} {
		p := &probeResult{failures: tc.failures, err: tc.err}
		if got := p.staleAfter(maxAge); got != tc.want {
			t.Errorf("failures=%d: staleAfter=%s, want %s", tc.failures, got, tc.want)
		}
	}
}

func TestDegradedProbes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		health []cluster.NodeHealth
		want   bool
	}{
		{"all healthy", []cluster.NodeHealth{{Reachable: true, ClusterState: "ok"}, {Reachable: true, ClusterState: "ok"}}, false},
		{"standalone", []cluster.NodeHealth{{Reachable: true}}, false},
		{"a node unreachable", []cluster.NodeHealth{{Reachable: true, ClusterState: "ok"}, {Reachable: false, Err: fmt.Errorf("refused")}}, true},
		{"a node in cluster_state:fail", []cluster.NodeHealth{{Reachable: true, ClusterState: "fail"}}, true},
		{"a node answering with an error", []cluster.NodeHealth{{Reachable: true, Err: fmt.Errorf("LOADING")}}, true},
	} {
		if got := degraded(tc.health); got != tc.want {
			t.Errorf("%s: degraded=%v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStatusListsAreClippedWithTrueCounts(t *testing.T) {
	topo := &cluster.Topology{SlotsCovered: cluster.SlotCount}
	for i := 0; i < maxStatusShards+10; i++ {
		m := &cluster.Node{ID: fmt.Sprintf("m%04d", i), Announced: fmt.Sprintf("m%d.shard.invalid:6379", i), Role: cluster.RoleMaster}
		s := cluster.Shard{Master: m, Slots: []cluster.SlotRange{{Start: i, End: i}}}
		r := &cluster.Node{ID: fmt.Sprintf("r%04d", i), Announced: fmt.Sprintf("r%d.shard.invalid:6379", i), Role: cluster.RoleReplica}
		s.Replicas = []*cluster.Node{r}
		topo.Shards = append(topo.Shards, s)
		topo.Nodes = append(topo.Nodes, m, r)
	}
	for i := 0; i < maxStatusReplicas+1; i++ {
		topo.Shards[0].Replicas = append(topo.Shards[0].Replicas, &cluster.Node{ID: fmt.Sprintf("x%d", i)})
	}
	rc := &rconnv1.RedisConnection{}
	note := setTopologyStatus(rc, topo, nil)
	if len(rc.Status.Nodes) != maxStatusNodes || len(rc.Status.Shards) != maxStatusShards || len(rc.Status.Shards[0].ReplicaIDs) != maxStatusReplicas {
		t.Fatalf("lists not clipped: %d nodes, %d shards, %d replicas", len(rc.Status.Nodes), len(rc.Status.Shards), len(rc.Status.Shards[0].ReplicaIDs))
	}
	if rc.Status.NodeCount != int32(len(topo.Nodes)) || rc.Status.ShardCount != int32(len(topo.Shards)) {
		t.Fatalf("counts not true: %d nodes, %d shards", rc.Status.NodeCount, rc.Status.ShardCount)
	}
	for _, want := range []string{"first 2000 of 2020 nodes", "first 1000 of 1010 shards", "64 of its"} {
		if !strings.Contains(note, want) {
			t.Errorf("note %q does not say %q", note, want)
		}
	}
	rc2 := &rconnv1.RedisConnection{}
	if note := setTopologyStatus(rc2, &cluster.Topology{Shards: topo.Shards[1:3], Nodes: topo.Nodes[2:6]}, nil); note != "" {
		t.Errorf("a small topology got a clipping note: %q", note)
	}
}

func TestHealthMessagesNameAtMostTwentyNodes(t *testing.T) {
	var health []cluster.NodeHealth
	for i := 0; i < 50; i++ {
		health = append(health, cluster.NodeHealth{Announced: fmt.Sprintf("n%d:6379", i), Dialed: fmt.Sprintf("127.0.0.1:%d", 7000+i), Err: fmt.Errorf("read tcp: SECRET from the server")})
	}
	ok, reason, msg := healthCondition(health, false)
	if ok || reason != rconnv1.ReasonNodesUnreachable {
		t.Fatalf("got %v %s", ok, reason)
	}
	if !strings.Contains(msg, "50 of 50 nodes unreachable") || !strings.Contains(msg, "and 30 more") {
		t.Errorf("message %q", msg)
	}
	if strings.Contains(msg, "SECRET") {
		t.Errorf("message echoes an error's text: %q", msg)
	}
}
