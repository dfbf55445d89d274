package controllers

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Metrics beyond controller-runtime's, labelled by RedisConnection namespace/name and node.
//
// What a RedisConnection's status says (Ready and its reason, slot coverage, node health) is
// not tracked here: stateCollector reads it from the manager's cache at scrape time
// (cert-manager's certificate collector), so a RedisConnection that goes, or a node that leaves
// its topology, takes its series along without anyone deleting them. Only what status does not
// carry is kept as series of its own: ping latency, certificate expiry, the topology-change
// counter and the controller's own numbers.
var (
	nodeUp = stateDesc(prometheus.GaugeOpts{
		Name: "rconn_node_up",
		Help: "1 when the node answered its last health check through its mapped address.",
	}, "namespace", "name", "node")
	nodePing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_node_ping_seconds",
		Help: "PING round trip of the node's last health check.",
	}, []string{"namespace", "name", "node"})
	ready = stateDesc(prometheus.GaugeOpts{
		Name: "rconn_ready",
		Help: "1 when the RedisConnection's Ready condition is True, else 0 (the reason is in the condition): alert on this, it also covers an unreachable cluster, when no node is health-checked.",
	}, "namespace", "name")
	slotsCovered = stateDesc(prometheus.GaugeOpts{
		Name: "rconn_slots_covered",
		Help: "Hash slots served by some master (16384 when the cluster is complete).",
	}, "namespace", "name")
	topologyChanges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rconn_topology_changes_total",
		Help: "Topology changes seen (nodes joined or left, roles changed, failovers).",
	}, []string{"namespace", "name"})
	openInspectors = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rconn_inspectors_open",
		Help: "Open sets of Redis connections (one small pool per node) held by the controller. RedisConnections with the same mode, root nodes, credentials, TLS, client name, timeouts and node address map share one set, so this is at most the number of RedisConnections.",
	})
	probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rconn_probe_duration_seconds",
		Help:    "Duration of one background discovery + health probe of a set of Redis connections, by result (ok or failed).",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"result"})
	sentinelEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rconn_sentinel_events_total",
		Help: "Sentinel events received by the shared inspectors' subscriptions (+switch-master, +sdown, -sdown, +odown, resubscribed); each starts a probe.",
	}, []string{"kind"})
	sentinelProbesDelayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rconn_sentinel_probes_delayed_total",
		Help: "Sentinel probes asked for by events (or a +switch-master chase) that waited for the per-inspector rate limit (60 at once, then one per 5 s): a sentinel flooding events.",
	})
	eventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rconn_events_dropped_total",
		Help: "Events not recorded because their RedisConnection exceeded its Event rate limit (20 at once, then one per 30s).",
	})
	inspectorReferences = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rconn_inspector_references",
		Help: "RedisConnections using one of the open sets of Redis connections (rconn_inspectors_open).",
	})
	readyReason = stateDesc(prometheus.GaugeOpts{
		Name: "rconn_ready_reason",
		Help: "1 for the reason of the RedisConnection's Ready condition (one series per RedisConnection; Ready when rconn_ready is 1, else the root cause): alerts join it to rconn_ready to say why.",
	}, "namespace", "name", "reason")
	certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_certificate_expiry_timestamp_seconds",
		Help: "Unix time at which the earliest TLS certificate the RedisConnection references (CA or client certificate) expires. Only for RedisConnections with TLS material; kept at the last valid value while a rotation fails.",
	}, []string{"namespace", "name"})
)

// replyBudget is the budget the reply-budget metrics report (set by SetupWithManager; the
// metrics read 0 until then).
var replyBudget atomic.Pointer[cluster.ReplyBudget]

var (
	replyBudgetUsed = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "rconn_reply_budget_used_bytes",
		Help: "What the Redis replies being read for all RedisConnections hold of --max-inflight-reply-bytes right now.",
	}, func() float64 {
		if b := replyBudget.Load(); b != nil {
			return float64(b.Used())
		}
		return 0
	})
	replyBudgetRefused = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rconn_reply_budget_refused_total",
		Help: "Reads of Redis replies refused because the reply budget (or one RedisConnection's quarter of it) was exhausted: the probe failed with ManagerBusy.",
	}, func() float64 {
		if b := replyBudget.Load(); b != nil {
			return float64(b.Refused())
		}
		return 0
	})
)

func init() {
	metrics.Registry.MustRegister(nodePing, topologyChanges, certExpiry, openInspectors, inspectorReferences, eventsDropped, probeDuration,
		sentinelEvents, sentinelProbesDelayed, replyBudgetUsed, replyBudgetRefused)
}

// stateDesc describes a gauge stateCollector derives from status.
func stateDesc(o prometheus.GaugeOpts, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(o.Name, o.Help, labels, nil)
}

// stateCollector produces rconn_ready, rconn_ready_reason, rconn_slots_covered and rconn_node_up
// from the RedisConnections in the manager's cache, when Prometheus scrapes. Only the elected
// leader reports them, as only the leader reconciles (a standby's cache may hold nothing).
type stateCollector struct {
	cache   client.Reader
	elected <-chan struct{}
}

// collectTimeout bounds one scrape's read of the cache (a List blocks until the informer has
// synced).
const collectTimeout = 5 * time.Second

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{ready, readyReason, slotsCovered, nodeUp} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	var list rconnv1.RedisConnectionList
	if err := c.cache.List(ctx, &list); err != nil {
		ch <- prometheus.NewInvalidMetric(ready, err)
		return
	}
	for i := range list.Items {
		for _, m := range stateMetrics(&list.Items[i]) {
			ch <- m
		}
	}
}

// stateMetrics are the gauges one RedisConnection's status gives: Ready (0 or 1) and its reason
// for every RedisConnection, slot coverage once a cluster's topology is known, and up (0 or 1)
// for every node status.nodes lists as health-checked. A RedisConnection being deleted has none.
func stateMetrics(rc *rconnv1.RedisConnection) []prometheus.Metric {
	if !rc.DeletionTimestamp.IsZero() {
		return nil
	}
	ns, name := rc.Namespace, rc.Name
	c := meta.FindStatusCondition(rc.Status.Conditions, rconnv1.ConditionReady)
	out := []prometheus.Metric{
		prometheus.MustNewConstMetric(ready, prometheus.GaugeValue, boolValue(c != nil && c.Status == metav1.ConditionTrue), ns, name),
		prometheus.MustNewConstMetric(readyReason, prometheus.GaugeValue, 1, ns, name, readyReasonOf(c)),
	}
	if rc.Spec.Mode != rconnv1.ModeStandalone && rc.Status.NodeCount > 0 {
		out = append(out, prometheus.MustNewConstMetric(slotsCovered, prometheus.GaugeValue, float64(rc.Status.SlotsCovered), ns, name))
	}
	for _, n := range rc.Status.Nodes {
		if n.Health != "" {
			out = append(out, prometheus.MustNewConstMetric(nodeUp, prometheus.GaugeValue, boolValue(n.Health == rconnv1.HealthHealthy), ns, name, n.Announced))
		}
	}
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registered is the stateCollector in metrics.Registry: a manager set up again in the same
// process (tests) replaces it, so scrapes read the cache of the manager that runs.
var registered struct {
	sync.Mutex
	c *stateCollector
}

func registerStateCollector(cache client.Reader, elected <-chan struct{}) error {
	registered.Lock()
	defer registered.Unlock()
	if registered.c != nil {
		metrics.Registry.Unregister(registered.c)
	}
	c := &stateCollector{cache: cache, elected: elected}
	if err := metrics.Registry.Register(c); err != nil {
		return err
	}
	registered.c = c
	return nil
}

// pinged remembers which nodes have a ping series per RedisConnection, so nodes that left the
// topology or stopped answering lose theirs instead of going stale.
var pinged = struct {
	sync.Mutex
	nodes map[[2]string]map[string]bool
}{nodes: map[[2]string]map[string]bool{}}

// recordPing sets rconn_node_ping_seconds of every node that answered its health check.
func recordPing(ns, name string, health []cluster.NodeHealth) {
	ping := map[string]bool{}
	for _, h := range health {
		if h.Reachable {
			nodePing.WithLabelValues(ns, name, h.Announced).Set(h.Latency.Seconds())
			ping[h.Announced] = true
		}
	}
	key := [2]string{ns, name}
	pinged.Lock()
	defer pinged.Unlock()
	for node := range pinged.nodes[key] {
		if !ping[node] {
			nodePing.DeleteLabelValues(ns, name, node)
		}
	}
	pinged.nodes[key] = ping
}

// recordCertificateExpiry sets or (without TLS certificates) removes the expiry gauge.
func recordCertificateExpiry(ns, name string, expiry time.Time) {
	if expiry.IsZero() {
		certExpiry.DeleteLabelValues(ns, name)
		return
	}
	certExpiry.WithLabelValues(ns, name).Set(float64(expiry.Unix()))
}

// initTopologyChanges creates the topology counter at 0, so that increase() sees the first
// change.
func initTopologyChanges(ns, name string) {
	topologyChanges.WithLabelValues(ns, name)
}

// forgetMetrics drops every series of a deleted RedisConnection that status does not carry.
func forgetMetrics(ns, name string) {
	l := prometheus.Labels{"namespace": ns, "name": name}
	nodePing.DeletePartialMatch(l)
	pinged.Lock()
	delete(pinged.nodes, [2]string{ns, name})
	pinged.Unlock()
	certExpiry.DeletePartialMatch(l)
	topologyChanges.DeletePartialMatch(l)
}

func readyReasonOf(c *metav1.Condition) string {
	if c == nil || c.Reason == "" {
		return rconnv1.ReasonReconciling
	}
	return c.Reason
}
