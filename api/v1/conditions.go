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

	// Reasons of CredentialsResolved.
	ReasonCredentialsResolved    = "Resolved"
	ReasonNoCredentials          = "NoCredentials"
	ReasonSecretNotFound         = "SecretNotFound"
	ReasonSecretKeyMissing       = "SecretKeyMissing"
	ReasonInvalidCertificate     = "InvalidCertificate"
	ReasonCertificateExpired     = "CertificateExpired"
	ReasonCertificateNotYetValid = "CertificateNotYetValid"
	ReasonKeyMismatch            = "KeyMismatch"
	// ReasonAdmissionPolicyMissing: the RedisConnection references Secrets, and the manager
	// (--require-admission-policy) does not find the secret-references ValidatingAdmissionPolicy
	// and its binding enforced; no referenced Secret is read until it does.
	ReasonAdmissionPolicyMissing = "AdmissionPolicyMissing"

	// Reasons of AddressMapResolved.
	ReasonAddressMapResolved  = "Resolved"
	ReasonNoAddressMap        = "NoAddressMap"
	ReasonMappingConflict     = "MappingConflict"
	ReasonLoadBalancerPending = "LoadBalancerPending"
	ReasonNoServices          = "NoServices"
	ReasonNoEndpoints         = "NoEndpoints"
	ReasonServicePortNotFound = "ServicePortNotFound"
	ReasonNodeAddressUnknown  = "NodeAddressUnknown"

	// Reasons of TopologyDiscovered.
	ReasonDiscovered           = "Discovered"
	ReasonRootNodesUnreachable = "RootNodesUnreachable"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	// ReasonTLSHandshakeFailed is no longer set: a server certificate that fails verification
	// proves a TLS listener, not a Redis, and reads as RootNodesUnreachable like a closed port
	// (docs/security.md). Kept for status written by earlier managers.
	ReasonTLSHandshakeFailed = "TLSHandshakeFailed"
	ReasonNotACluster        = "NotACluster"
	ReasonClusterModeServer  = "ClusterModeServer"
	ReasonSlotsUncovered     = "SlotsUncovered"
	// ReasonDiscovering: the first discovery through new settings is running in the
	// background; the condition follows when it finishes.
	ReasonDiscovering = "Discovering"
	// ReasonProtocolError: a root node answered with something that is not a valid Redis reply,
	// or a reply larger than the manager's caps (the bytes are never shown).
	ReasonProtocolError = "ProtocolError"
	// ReasonTopologyTooLarge: the topology has more nodes or shards than the manager's caps.
	ReasonTopologyTooLarge = "TopologyTooLarge"
	// ReasonAddressDenied: every root node address is refused by the manager's address policy
	// (link-local, the API server, --deny-cidrs).
	ReasonAddressDenied = "AddressDenied"
	// ReasonInvalidOptions: the spec passed the API server's validation but pkg/cluster refuses
	// the connection options it makes (e.g. a database other than 0 in Cluster mode, root nodes
	// mixing redis:// and rediss://, TLS with redis:// URLs). Nothing was dialed.
	ReasonInvalidOptions = "InvalidOptions"
	// ReasonManagerBusy: no root node's reply could be read because the replies the manager
	// reads for all RedisConnections together already held its budget
	// (--max-inflight-reply-bytes); says nothing about the cluster. Retried on the backoff.
	ReasonManagerBusy = "ManagerBusy"
	// Reasons of TopologyDiscovered in Sentinel mode (False, the outputs keep the last
	// confirmed master): ReasonNoQuorum: sentinels answered but no master is named by more than
	// half of them; ReasonMasterNotConfirmed: a majority named a master that, asked through the
	// map, is unreachable or does not say ROLE master (a failover in progress); ReasonMasterUnknown:
	// no sentinel that answered monitors a master by spec.sentinel.masterName.
	ReasonNoQuorum           = "NoQuorum"
	ReasonMasterNotConfirmed = "MasterNotConfirmed"
	ReasonMasterUnknown      = "MasterUnknown"

	// Reasons of NodesHealthy.
	ReasonAllNodesHealthy  = "AllHealthy"
	ReasonNodesUnreachable = "NodesUnreachable"
	ReasonNodesUnhealthy   = "NodesUnhealthy"

	// Reasons of ConfigRendered.
	ReasonRendered            = "Rendered"
	ReasonOutputConflict      = "OutputConflict"
	ReasonPrerequisitesNotMet = "PrerequisitesNotMet"
	// ReasonConfigTooLarge: config.json would exceed the size a ConfigMap can hold.
	ReasonConfigTooLarge = "ConfigTooLarge"
)
