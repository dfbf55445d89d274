package v1

// Event reasons of the Events the controller records about a RedisConnection (CamelCase,
// stable: alerts and scripts match on them). docs/api.md lists every one in its Events table
// (api/v1/docs_test.go checks). Besides these, a CredentialsResolved condition that turns False
// (or changes its message) is reported as a Warning with the condition's reason.
const (
	// EventReasonTopologyChanged (Normal): the set of nodes (id, announced address, role)
	// differs from the previous discovery.
	EventReasonTopologyChanged = "TopologyChanged"
	// EventReasonFailoverDetected (Warning): a shard is now served by a different master; in
	// Sentinel mode, the confirmed master changed (the message names the old and new one).
	EventReasonFailoverDetected = "FailoverDetected"
	// EventReasonNodeUnreachable (Warning): a node that was Healthy is Unreachable or Unhealthy.
	EventReasonNodeUnreachable = "NodeUnreachable"
	// EventReasonNodeRecovered (Normal): a node that was not Healthy is Healthy again.
	EventReasonNodeRecovered = "NodeRecovered"
	// EventReasonOutputRenamed (Normal): spec.output renamed an output; the object under the
	// old name was deleted.
	EventReasonOutputRenamed = "OutputRenamed"
	// EventReasonAddressMapChanged (Normal): the applied node address map changed.
	EventReasonAddressMapChanged = "AddressMapChanged"
	// EventReasonCertificateExpiringSoon (Warning): a referenced certificate expires within 14
	// days.
	EventReasonCertificateExpiringSoon = "CertificateExpiringSoon"
)
