package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Metrics beyond controller-runtime's, labelled by RedisConnection namespace/name and node.
var (
	nodeUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_node_up",
		Help: "1 when the node answered its last health check through its mapped address.",
	}, []string{"namespace", "name", "node"})
	nodePing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_node_ping_seconds",
		Help: "PING round trip of the node's last health check.",
	}, []string{"namespace", "name", "node"})
	ready = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_ready",
		Help: "1 when the RedisConnection's Ready condition is True, else 0 (the reason is in the condition): alert on this, it also covers an unreachable cluster, when no node is health-checked.",
	}, []string{"namespace", "name"})
	slotsCovered = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_slots_covered",
		Help: "Hash slots served by some master (16384 when the cluster is complete).",
	}, []string{"namespace", "name"})
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
	eventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rconn_events_dropped_total",
		Help: "Events not recorded because their RedisConnection exceeded its Event rate limit (20 at once, then one per 30s).",
	})
	inspectorReferences = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rconn_inspector_references",
		Help: "RedisConnections using one of the open sets of Redis connections (rconn_inspectors_open).",
	})
	readyReason = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_ready_reason",
		Help: "1 for the reason of the RedisConnection's Ready condition (one series per RedisConnection; Ready when rconn_ready is 1, else the root cause): alerts join it to rconn_ready to say why.",
	}, []string{"namespace", "name", "reason"})
	certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rconn_certificate_expiry_timestamp_seconds",
		Help: "Unix time at which the earliest TLS certificate the RedisConnection references (CA or client certificate) expires. Only for RedisConnections with TLS material; kept at the last valid value while a rotation fails.",
	}, []string{"namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(nodeUp, nodePing, ready, readyReason, slotsCovered, topologyChanges, certExpiry, openInspectors, inspectorReferences, eventsDropped, probeDuration)
}

// recorded remembers which node series each RedisConnection has, so nodes that left the
// topology (or stopped answering, for the ping gauge) lose theirs instead of going stale.
var recorded = struct {
	sync.Mutex
	up, ping map[[2]string]map[string]bool
	reason   map[[2]string]string
}{up: map[[2]string]map[string]bool{}, ping: map[[2]string]map[string]bool{}, reason: map[[2]string]string{}}

func recordHealth(ns, name string, health []cluster.NodeHealth) {
	up, ping := map[string]bool{}, map[string]bool{}
	for _, h := range health {
		v := 0.0
		if h.Healthy() {
			v = 1
		}
		nodeUp.WithLabelValues(ns, name, h.Announced).Set(v)
		up[h.Announced] = true
		if h.Reachable {
			nodePing.WithLabelValues(ns, name, h.Announced).Set(h.Latency.Seconds())
			ping[h.Announced] = true
		}
	}
	key := [2]string{ns, name}
	recorded.Lock()
	defer recorded.Unlock()
	for node := range recorded.up[key] {
		if !up[node] {
			nodeUp.DeleteLabelValues(ns, name, node)
		}
	}
	for node := range recorded.ping[key] {
		if !ping[node] {
			nodePing.DeleteLabelValues(ns, name, node)
		}
	}
	recorded.up[key], recorded.ping[key] = up, ping
}

// recordReady sets rconn_ready and rconn_ready_reason. The reason series is replaced (set, then
// the previous one deleted), never absent in between, so an alert's "for" is not reset by a
// scrape that falls between the two. The topology counter starts at 0, so that increase() sees
// the first change.
func recordReady(ns, name string, isReady bool, reason string) {
	v := 0.0
	if isReady {
		v = 1
	}
	ready.WithLabelValues(ns, name).Set(v)
	topologyChanges.WithLabelValues(ns, name)
	readyReason.WithLabelValues(ns, name, reason).Set(1)
	key := [2]string{ns, name}
	recorded.Lock()
	defer recorded.Unlock()
	if old, ok := recorded.reason[key]; ok && old != reason {
		readyReason.DeleteLabelValues(ns, name, old)
	}
	recorded.reason[key] = reason
}

// recordCertificateExpiry sets or (without TLS certificates) removes the expiry gauge.
func recordCertificateExpiry(ns, name string, expiry time.Time) {
	if expiry.IsZero() {
		certExpiry.DeleteLabelValues(ns, name)
		return
	}
	certExpiry.WithLabelValues(ns, name).Set(float64(expiry.Unix()))
}

// forgetMetrics drops every series of a deleted RedisConnection.
func forgetMetrics(ns, name string) {
	l := prometheus.Labels{"namespace": ns, "name": name}
	nodeUp.DeletePartialMatch(l)
	nodePing.DeletePartialMatch(l)
	ready.DeletePartialMatch(l)
	readyReason.DeletePartialMatch(l)
	recorded.Lock()
	delete(recorded.up, [2]string{ns, name})
	delete(recorded.ping, [2]string{ns, name})
	delete(recorded.reason, [2]string{ns, name})
	recorded.Unlock()
	slotsCovered.DeletePartialMatch(l)
	certExpiry.DeletePartialMatch(l)
	topologyChanges.DeletePartialMatch(l)
}

func readyReasonOf(c *metav1.Condition) string {
	if c == nil || c.Reason == "" {
		return rconnv1.ReasonReconciling
	}
	return c.Reason
}
