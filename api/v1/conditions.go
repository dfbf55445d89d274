package v1

// Condition types of RedisConnection.status.conditions.
const (
	// ConditionReady summarises the others: True when apps can use the rendered output.
	ConditionReady = "Ready"
	// ConditionCredentialsResolved: the ACL and TLS Secrets exist, have their keys, and hold
	// valid, unexpired PEM.
	ConditionCredentialsResolved = "CredentialsResolved"
	// ConditionAddressMapResolved: the node address map was built without conflicts.
	ConditionAddressMapResolved = "AddressMapResolved"
	// ConditionTopologyDiscovered: the topology was read through the map, and (Cluster mode)
	// all 16384 slots are served.
	ConditionTopologyDiscovered = "TopologyDiscovered"
	// ConditionNodesHealthy: every node answered its health check through its mapped address.
	ConditionNodesHealthy = "NodesHealthy"
	// ConditionConfigRendered: the ConfigMap and Secret hold the current configuration.
	ConditionConfigRendered = "ConfigRendered"
)

// Condition reasons (CamelCase, stable: alerts and scripts match on them).
const (
	// ReasonReady: everything resolved, discovered, healthy and rendered.
	ReasonReady = "Ready"
	// ReasonReconciling: the first reconcile has not finished.
	ReasonReconciling = "Reconciling"

	// CredentialsResolved
	ReasonCredentialsResolved    = "Resolved"
	ReasonNoCredentials          = "NoCredentials"
	ReasonSecretNotFound         = "SecretNotFound"
	ReasonSecretKeyMissing       = "SecretKeyMissing"
	ReasonInvalidCertificate     = "InvalidCertificate"
	ReasonCertificateExpired     = "CertificateExpired"
	ReasonCertificateNotYetValid = "CertificateNotYetValid"
	ReasonKeyMismatch            = "KeyMismatch"

	// AddressMapResolved
	ReasonAddressMapResolved  = "Resolved"
	ReasonNoAddressMap        = "NoAddressMap"
	ReasonMappingConflict     = "MappingConflict"
	ReasonLoadBalancerPending = "LoadBalancerPending"
	ReasonNoServices          = "NoServices"
	ReasonNoEndpoints         = "NoEndpoints"
	ReasonServicePortNotFound = "ServicePortNotFound"
	ReasonNodeAddressUnknown  = "NodeAddressUnknown"

	// TopologyDiscovered
	ReasonDiscovered           = "Discovered"
	ReasonRootNodesUnreachable = "RootNodesUnreachable"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonTLSHandshakeFailed   = "TLSHandshakeFailed"
	ReasonNotACluster          = "NotACluster"
	ReasonClusterModeServer    = "ClusterModeServer"
	ReasonSlotsUncovered       = "SlotsUncovered"

	// NodesHealthy
	ReasonAllNodesHealthy  = "AllHealthy"
	ReasonNodesUnreachable = "NodesUnreachable"
	ReasonNodesUnhealthy   = "NodesUnhealthy"

	// ConfigRendered
	ReasonRendered            = "Rendered"
	ReasonOutputConflict      = "OutputConflict"
	ReasonPrerequisitesNotMet = "PrerequisitesNotMet"
)
