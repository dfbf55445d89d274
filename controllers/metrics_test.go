package controllers

import (
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// series renders metrics as sorted `name{label=value,...} value` lines, keeping those of
// namespace ns only (the vectors are shared with other tests).
func series(t *testing.T, ns string, ms []prometheus.Metric) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		var labels []string
		keep := false
		for _, l := range d.GetLabel() {
			if l.GetName() == "namespace" {
				keep = l.GetValue() == ns
				continue
			}
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		if !keep {
			continue
		}
		v := d.GetGauge().GetValue()
		if d.Counter != nil {
			v = d.GetCounter().GetValue()
		}
		_, name, _ := strings.Cut(m.Desc().String(), `fqName: "`)
		name, _, _ = strings.Cut(name, `"`)
		out = append(out, name+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

func collect(c prometheus.Collector) []prometheus.Metric {
	ch := make(chan prometheus.Metric, 256)
	c.Collect(ch)
	close(ch)
	var out []prometheus.Metric
	for m := range ch {
		out = append(out, m)
	}
	return out
}

func TestStateMetrics(t *testing.T) {
	readyCond := func(ok bool, reason string) []metav1.Condition {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		return []metav1.Condition{{Type: rconnv1.ConditionReady, Status: s, Reason: reason}}
	}
	node := func(addr string, h rconnv1.Health) rconnv1.NodeStatus {
		return rconnv1.NodeStatus{Announced: addr, Health: h}
	}
	for _, tc := range []struct {
		name string
		rc   rconnv1.RedisConnection
		want []string
	}{
		{
			name: "not reconciled yet",
			want: []string{"rconn_ready{name=rc} 0", "rconn_ready_reason{name=rc,reason=Reconciling} 1"},
		},
		{
			name: "credentials missing, no topology yet",
			rc:   rconnv1.RedisConnection{Status: rconnv1.RedisConnectionStatus{Conditions: readyCond(false, rconnv1.ReasonSecretNotFound)}},
			want: []string{"rconn_ready{name=rc} 0", "rconn_ready_reason{name=rc,reason=SecretNotFound} 1"},
		},
		{
			name: "ready cluster: a node up, one down, one not checked",
			rc: rconnv1.RedisConnection{Status: rconnv1.RedisConnectionStatus{
				Conditions: readyCond(true, rconnv1.ReasonReady), NodeCount: 3, SlotsCovered: 16384,
				Nodes: []rconnv1.NodeStatus{node("a:1", rconnv1.HealthHealthy), node("b:1", rconnv1.HealthUnreachable), node("c:1", "")},
			}},
			want: []string{
				"rconn_node_up{name=rc,node=a:1} 1", "rconn_node_up{name=rc,node=b:1} 0",
				"rconn_ready{name=rc} 1", "rconn_ready_reason{name=rc,reason=Ready} 1", "rconn_slots_covered{name=rc} 16384",
			},
		},
		{
			name: "standalone: no slot coverage",
			rc: rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{Mode: rconnv1.ModeStandalone}, Status: rconnv1.RedisConnectionStatus{
				Conditions: readyCond(true, rconnv1.ReasonReady), NodeCount: 1, Nodes: []rconnv1.NodeStatus{node("a:1", rconnv1.HealthUnhealthy)},
			}},
			want: []string{"rconn_node_up{name=rc,node=a:1} 0", "rconn_ready{name=rc} 1", "rconn_ready_reason{name=rc,reason=Ready} 1"},
		},
		{
			name: "being deleted",
			rc: rconnv1.RedisConnection{
				ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{Time: time.Now()}, Finalizers: []string{"x"}},
				Status:     rconnv1.RedisConnectionStatus{Conditions: readyCond(true, rconnv1.ReasonReady)},
			},
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := tc.rc
			rc.Namespace, rc.Name = "state", "rc"
			if got := series(t, "state", stateMetrics(&rc)); !reflect.DeepEqual(got, sorted(tc.want)) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The collector reports what the cache holds at scrape time: a RedisConnection that went, or a
// node that left its status, has no series without anyone deleting one; a replica that is not
// the leader reports nothing.
func TestStateCollectorReadsTheCache(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := rconnv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	rc := &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "cached", Name: "rc"},
		Status: rconnv1.RedisConnectionStatus{
			Conditions: []metav1.Condition{{Type: rconnv1.ConditionReady, Status: metav1.ConditionTrue, Reason: rconnv1.ReasonReady, LastTransitionTime: metav1.Now()}},
			NodeCount:  2, SlotsCovered: 16384,
			Nodes: []rconnv1.NodeStatus{{Announced: "a:1", Health: rconnv1.HealthHealthy}, {Announced: "b:1", Health: rconnv1.HealthHealthy}},
		},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(rc).WithStatusSubresource(rc).Build()
	elected := make(chan struct{})
	sc := &stateCollector{cache: c, elected: elected}
	if got := series(t, "cached", collect(sc)); len(got) != 0 {
		t.Fatalf("before the election: %q", got)
	}
	close(elected)
	want := []string{"rconn_node_up{name=rc,node=a:1} 1", "rconn_node_up{name=rc,node=b:1} 1", "rconn_ready{name=rc} 1", "rconn_ready_reason{name=rc,reason=Ready} 1", "rconn_slots_covered{name=rc} 16384"}
	if got := series(t, "cached", collect(sc)); !reflect.DeepEqual(got, sorted(want)) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}

	rc.Status.Nodes = rc.Status.Nodes[:1]
	rc.Status.Conditions[0].Status, rc.Status.Conditions[0].Reason = metav1.ConditionFalse, rconnv1.ReasonNodesUnreachable
	if err := c.Status().Update(t.Context(), rc); err != nil {
		t.Fatal(err)
	}
	want = []string{"rconn_node_up{name=rc,node=a:1} 1", "rconn_ready{name=rc} 0", "rconn_ready_reason{name=rc,reason=NodesUnreachable} 1", "rconn_slots_covered{name=rc} 16384"}
	if got := series(t, "cached", collect(sc)); !reflect.DeepEqual(got, sorted(want)) {
		t.Errorf("after b left: got  %q\nwant %q", got, want)
	}

	if err := c.Delete(t.Context(), rc); err != nil {
		t.Fatal(err)
	}
	if got := series(t, "cached", collect(sc)); len(got) != 0 {
		t.Errorf("after delete: %q", got)
	}
}

// A node that leaves the topology or stops answering loses its ping series.
func TestRecordPingDropsDepartedNodes(t *testing.T) {
	ns, name := "metrics-unit", "rc"
	healthy := func(addr string) cluster.NodeHealth {
		return cluster.NodeHealth{Announced: addr, Reachable: true, Latency: time.Millisecond, Role: "master"}
	}
	recordPing(ns, name, []cluster.NodeHealth{healthy("a:1"), healthy("b:1"), healthy("c:1")})
	if got := series(t, ns, collect(nodePing)); len(got) != 3 {
		t.Fatalf("rconn_node_ping_seconds = %q", got)
	}
	recordPing(ns, name, []cluster.NodeHealth{healthy("a:1"), {Announced: "c:1"}})
	if got := series(t, ns, collect(nodePing)); !reflect.DeepEqual(got, []string{"rconn_node_ping_seconds{name=rc,node=a:1} 0.001"}) {
		t.Errorf("rconn_node_ping_seconds after b left and c went down = %q, want only a:1", got)
	}
	forgetMetrics(ns, name)
	if got := series(t, ns, collect(nodePing)); len(got) != 0 {
		t.Errorf("after forget: %q", got)
	}
}

// rconn_topology_changes_total exists at 0 from the first reconcile; the certificate gauge
// follows the credentials; forgetMetrics removes both.
func TestRecordCertificateExpiryAndTopologyCounter(t *testing.T) {
	ns, name := "metrics-cert", "rc"
	initTopologyChanges(ns, name)
	if got := series(t, ns, collect(topologyChanges)); !reflect.DeepEqual(got, []string{"rconn_topology_changes_total{name=rc} 0"}) {
		t.Errorf("rconn_topology_changes_total after the first reconcile = %q, want one series at 0", got)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	recordCertificateExpiry(ns, name, at)
	if got := series(t, ns, collect(certExpiry)); !reflect.DeepEqual(got, []string{"rconn_certificate_expiry_timestamp_seconds{name=rc} " + strconv.FormatFloat(float64(at.Unix()), 'g', -1, 64)}) {
		t.Errorf("rconn_certificate_expiry_timestamp_seconds = %q, want %d", got, at.Unix())
	}
	recordCertificateExpiry(ns, name, time.Time{})
	if got := series(t, ns, collect(certExpiry)); len(got) != 0 {
		t.Errorf("after TLS was removed: %q", got)
	}
	recordCertificateExpiry(ns, name, at)
	forgetMetrics(ns, name)
	for what, c := range map[string]prometheus.Collector{"expiry": certExpiry, "topology": topologyChanges} {
		if got := series(t, ns, collect(c)); len(got) != 0 {
			t.Errorf("%s after forget: %q", what, got)
		}
	}
	if got := readyReasonOf(nil); got != rconnv1.ReasonReconciling {
		t.Errorf("reason without a Ready condition = %q", got)
	}
}
