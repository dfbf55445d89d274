package main

import rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"

// adviceKey is a condition type and one of its False reasons.
type adviceKey struct{ condition, reason string }

// advice is the one-line "what to do" for each False condition reason; the long form is the
// "What to do" column of docs/api.md, Conditions. Reasons shared by several conditions (an
// empty condition) apply to all of them.
var advice = map[adviceKey]string{
	{"", rconnv1.ReasonPrerequisitesNotMet}: "not the root cause: fix the condition it waits for (named in the message)",

	{rconnv1.ConditionReady, rconnv1.ReasonReconciling}: "wait; if it stays, check that the manager runs (kubectl -n rconn-system logs deploy/rconn-controller-manager)",

	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonSecretNotFound}:         "create the Secret named in the message in this namespace, or fix the name in spec.defaults.acl / tls",
	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonSecretKeyMissing}:       "add the key named in the message to the Secret, or point the spec's key field at the key it has",
	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonInvalidCertificate}:     "the Secret's ca.crt / tls.crt / tls.key must be PEM (certificate, then key); re-issue or re-create the Secret",
	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonCertificateExpired}:     "renew the client certificate (cert-manager: check the Certificate's status) and update the Secret",
	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonCertificateNotYetValid}: "the certificate's notBefore is in the future: check the issuer's clock, or wait",
	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonKeyMismatch}:            "tls.key does not belong to tls.crt: put the matching pair into the Secret",
	{rconnv1.ConditionCredentialsResolved, rconnv1.ReasonAdmissionPolicyMissing}: "a cluster admin must install the secret-references admission policy and its binding (docs/operating.md, Admission policy)",

	{rconnv1.ConditionAddressMapResolved, rconnv1.ReasonMappingConflict}:     "select each Redis pod through one Service only, or add a static entry for that address (static wins)",
	{rconnv1.ConditionAddressMapResolved, rconnv1.ReasonLoadBalancerPending}: "wait for the load balancer, or check the cloud / MetalLB controller and the Service's events",
	{rconnv1.ConditionAddressMapResolved, rconnv1.ReasonNoServices}:          "check the fromServices labels, and that the Services are in the RedisConnection's namespace",
	{rconnv1.ConditionAddressMapResolved, rconnv1.ReasonNoEndpoints}:         "check that the Redis pods are Ready and selected by the Service; the EndpointSlice port must carry the Service port's name",
	{rconnv1.ConditionAddressMapResolved, rconnv1.ReasonServicePortNotFound}: "set fromServices[].port, or name the Service port \"redis\"",
	{rconnv1.ConditionAddressMapResolved, rconnv1.ReasonNodeAddressUnknown}:  "use the address type that fits the Service (PodDNS for a StatefulSet's headless Service)",

	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonDiscovering}:          "wait: the first discovery with new settings is running (bounded by the connect and health timeouts)",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonRootNodesUnreachable}: "check that the root nodes resolve and are reachable from the manager pod (NetworkPolicy, port, TLS on/off; with TLS, that ca.crt signed the server certificates and they name the mapped host or serverName); kubectl rconn check NAME tests from here",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonInvalidOptions}:       "fix the rootNodes entry or address map source named in the message",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonProtocolError}:        "a real cluster fits the manager's reply caps: check that the root node is Redis; else raise --max-reply-bytes",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonTopologyTooLarge}:     "raise the manager's --max-topology-nodes / --max-topology-shards if the cluster really is that large",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonAddressDenied}:        "use a root node address the manager's policy allows, or ask for it in --allow-cidrs",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonAuthenticationFailed}: "check the ACL Secret and that the user exists on every node with the commands the controller needs (docs/operating.md)",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonTLSHandshakeFailed}:   "ca.crt must sign the server certificates and the mapped host (or serverName) must be in their SANs",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonNotACluster}:          "set spec.mode: Standalone, or point rootNodes at a cluster",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonClusterModeServer}:    "set spec.mode: Cluster",
	{rconnv1.ConditionTopologyDiscovered, rconnv1.ReasonSlotsUncovered}:       "run redis-cli --cluster check <node>; assign the missing slots or recover the shard",

	{rconnv1.ConditionNodesHealthy, rconnv1.ReasonNodesUnreachable}: "compare each unreachable node's MAPPED address with where it really runs: a wrong static entry, a Service that misses the pod, a NetworkPolicy, or the node is down",
	{rconnv1.ConditionNodesHealthy, rconnv1.ReasonNodesUnhealthy}:   "redis-cli -h <node> cluster info: failed links, a node still loading, or an ACL without +role / +cluster|info",

	{rconnv1.ConditionConfigRendered, rconnv1.ReasonOutputConflict}:    "choose other names in spec.output, or delete the other object if it is stale",
	{rconnv1.ConditionConfigRendered, rconnv1.ReasonConfigTooLarge}:    "reduce the node address map (select fewer Services) or split the cluster",
	{rconnv1.ConditionConfigRendered, rconnv1.ReasonOutputWriteFailed}: "usually transient (API server busy); if it stays, check the manager's RBAC and the API server",
}

// adviceFor returns the advice for a False condition, "" when there is none. Ready copies
// the reason of its root cause: the advice of that condition's reason applies.
func adviceFor(condition, reason string) string {
	if a, ok := advice[adviceKey{condition, reason}]; ok {
		return a
	}
	if a, ok := advice[adviceKey{"", reason}]; ok {
		return a
	}
	if condition == rconnv1.ConditionReady {
		for k, a := range advice {
			if k.reason == reason {
				return a
			}
		}
	}
	return ""
}
