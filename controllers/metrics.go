package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

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
	inspectorReferences = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "rconn_inspector_references",
		Help: "RedisConnections using one of the open sets of Redis connections (rconn_inspectors_open).",
	})
)

func init() {
	metrics.Registry.MustRegister(nodeUp, nodePing, slotsCovered, topologyChanges, openInspectors, inspectorReferences)
}

func recordHealth(ns, name string, health []cluster.NodeHealth) {
	for _, h := range health {
		up := 0.0
		if h.Healthy() {
			up = 1
		}
		nodeUp.WithLabelValues(ns, name, h.Announced).Set(up)
		if h.Reachable {
			nodePing.WithLabelValues(ns, name, h.Announced).Set(h.Latency.Seconds())
		}
	}
}

// forgetMetrics drops every series of a deleted RedisConnection.
func forgetMetrics(ns, name string) {
	l := prometheus.Labels{"namespace": ns, "name": name}
	nodeUp.DeletePartialMatch(l)
	nodePing.DeletePartialMatch(l)
	slotsCovered.DeletePartialMatch(l)
	topologyChanges.DeletePartialMatch(l)
}
