package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Mode says whether the root nodes belong to a Redis Cluster or are one standalone server, or
// whether Sentinels (spec.sentinel) name a master with replicas.
// +kubebuilder:validation:Enum=Cluster;Standalone;Sentinel
type Mode string

const (
	// ModeCluster is a Redis Cluster (node-redis createCluster).
	ModeCluster Mode = "Cluster"
	// ModeStandalone is one Redis server, possibly a replica (node-redis createClient).
	ModeStandalone Mode = "Standalone"
	// ModeSentinel is a master with replicas watched by Redis Sentinel (node-redis
	// createSentinel): spec.sentinel names the master and the sentinels.
	ModeSentinel Mode = "Sentinel"
)

// RedisURL is a node-redis connection URL without credentials: redis[s]://host[:port][/db-number].
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="self.matches('^rediss?://')",message="url must start with redis:// or rediss://"
// +kubebuilder:validation:XValidation:rule="!self.matches('^rediss?://[^/@]*@')",message="url must not contain a username or password: credentials come from a Secret (spec.defaults.acl)"
// +kubebuilder:validation:XValidation:rule="!self.matches('^rediss?://') || self.matches('^rediss?://[^/@]*@') || self.matches('^rediss?://(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/[0-9]{0,5})?$')",message="url must look like redis[s]://host[:port][/db-number] with a host, a port from 1 to 65535 and no query or fragment"
type RedisURL string

// HostPort is "host:port": a DNS name, an IPv4 address or a bracketed IPv6 address, and a port
// from 1 to 65535 — the form Redis uses for announced node addresses.
// +kubebuilder:validation:MinLength=3
// +kubebuilder:validation:MaxLength=261
// +kubebuilder:validation:XValidation:rule="self.matches('^(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$') && int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535",message="must be host:port (IPv6 in brackets) with a port from 1 to 65535"
type HostPort string

// RootNode is one seed address used to discover the cluster: either a url or host (+ port).
// node-redis: an element of createCluster's rootNodes, or createClient's url/socket.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.host)",message="set exactly one of url or host"
// +kubebuilder:validation:XValidation:rule="!has(self.port) || has(self.host)",message="port goes with host; put the port inside the url instead"
type RootNode struct {
	// url is redis[s]://host[:port][/db-number]. rediss:// means TLS and requires
	// spec.defaults.tls.enabled. A username or password here is rejected: use spec.defaults.acl.
	// +optional
	URL RedisURL `json:"url,omitempty"`

	// host is a DNS name or an IPv4 address. With host, the port defaults to 6379. An IPv6
	// address goes in url instead: url: redis://[::1]:6379.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="!self.contains(':') && !self.contains('[') && !self.contains(']')",message="host must not contain ':' or brackets: for an IPv6 address use url, e.g. url: redis://[::1]:6379; a port goes in port"
	// +kubebuilder:validation:XValidation:rule="self.contains(':') || self.contains('[') || self.contains(']') || self.matches('^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$')",message="host must be a DNS name or an IP address (IPv4; IPv6 goes in url)"
	Host string `json:"host,omitempty"`

	// port of host (default 6379).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// SentinelNode is the address of one Sentinel (node-redis sentinelRootNodes element).
type SentinelNode struct {
	// host is a DNS name, an IPv4 address or an IPv6 address (without brackets).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$') || (self.contains(':') && self.matches('^[0-9A-Fa-f:.]+$'))",message="host must be a DNS name or an IP address (IPv6 without brackets)"
	Host string `json:"host"`

	// port of the Sentinel (default 26379).
	// +optional
	// +kubebuilder:default=26379
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`
}

// SentinelSpec names the master and the Sentinels that watch it (Sentinel mode). Sentinel auth
// and TLS are separate from the data nodes' (spec.defaults): Bitnami's chart sets both.
type SentinelSpec struct {
	// masterName is the name the Sentinels monitor the master under (sentinel monitor <name>;
	// node-redis createSentinel name, ioredis name, Spring sentinel.master).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9._-]+$')",message="masterName must be letters, digits, '.', '_' and '-' (the name in sentinel monitor <name> ...)"
	MasterName string `json:"masterName"`

	// rootNodes are Sentinels to ask for the master, its replicas and the other Sentinels
	// (node-redis sentinelRootNodes). The rest are discovered.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(a, self.exists_one(b, a.host.lowerAscii() == b.host.lowerAscii() && (has(a.port) ? a.port : 26379) == (has(b.port) ? b.port : 26379)))",message="sentinel rootNodes must not list the same host and port twice"
	RootNodes []SentinelNode `json:"rootNodes"`

	// acl names the Secret with the Sentinels' own ACL user and password (sentinel
	// auth-user/requirepass; node-redis sentinelClientOptions, ioredis sentinelUsername and
	// sentinelPassword). Unset: the Sentinels need no AUTH. Never spec.defaults.acl implicitly.
	// +optional
	ACL *ACLCredentials `json:"acl,omitempty"`

	// tls configures TLS for Sentinel connections (node-redis sentinelClientOptions.socket,
	// ioredis sentinelTLS). Unset: plaintext, whatever spec.defaults.tls says about data nodes.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
}

// +structType=atomic

// LocalSecretReference names a Secret in the RedisConnection's own namespace. There is no
// namespace field on purpose: a RedisConnection must never become a way to read a Secret its
// author could not read.
type LocalSecretReference struct {
	// name of the Secret: a lowercase DNS subdomain, like every Secret name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="Secret name must be a lowercase DNS subdomain (lowercase letters, digits, '-' and '.'), e.g. redis-creds"
	Name string `json:"name"`
}

// ACLCredentials names the Secret that holds the Redis ACL user and password.
type ACLCredentials struct {
	// secretRef is a Secret in the RedisConnection's own namespace.
	// +required
	SecretRef LocalSecretReference `json:"secretRef"`

	// usernameKey is the key of the username in the Secret. Unset: AUTH with the password only,
	// which is the "default" user.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')",message="usernameKey must be a Secret data key: letters, digits, '-', '_' and '.', not '.' and not starting with '..'"
	UsernameKey string `json:"usernameKey,omitempty"`

	// passwordKey is the key of the password in the Secret.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[-._a-zA-Z0-9]+$') && self != '.' && !self.startsWith('..')",message="passwordKey must be a Secret data key: letters, digits, '-', '_' and '.', not '.' and not starting with '..'"
	PasswordKey string `json:"passwordKey,omitempty"`
}

// TLSConfig configures TLS for every node connection (node-redis defaults.socket.tls).
// +kubebuilder:validation:XValidation:rule="self.enabled || (!has(self.secretRef) && !has(self.serverName) && !(has(self.insecureSkipVerify) && self.insecureSkipVerify))",message="secretRef, serverName and insecureSkipVerify need enabled: true"
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && has(self.serverName))",message="serverName has no effect with insecureSkipVerify: set one of them"
type TLSConfig struct {
	// enabled turns TLS on for every node connection.
	// +required
	Enabled bool `json:"enabled"`

	// secretRef is a Secret in the same namespace with the keys ca.crt (CA bundle that signs the
	// servers), and optionally tls.crt + tls.key (client certificate for mutual TLS) — the
	// layout cert-manager and kubernetes.io/tls Secrets use. Unset: the system roots.
	// +optional
	SecretRef *LocalSecretReference `json:"secretRef,omitempty"`

	// serverName overrides the name checked against server certificates (node-redis
	// servername). Unset: the host each node is dialed at after address mapping.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$')",message="serverName must be a DNS name"
	ServerName string `json:"serverName,omitempty"`

	// insecureSkipVerify accepts any server certificate. For experiments only: it makes TLS
	// worthless against an active attacker.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// NodeDefaults apply to every node connection (node-redis createCluster defaults).
type NodeDefaults struct {
	// acl names the Secret with the ACL username and password.
	// +optional
	ACL *ACLCredentials `json:"acl,omitempty"`

	// tls configures TLS.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`

	// connectTimeout bounds connecting to one node: TCP connect plus the TLS handshake (default 5s).
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1ms') && duration(self) <= duration('5m')",message="connectTimeout must be a duration such as 5s, between 1ms and 5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	ConnectTimeout *metav1.Duration `json:"connectTimeout,omitempty"`

	// database selects the logical database (SELECT). Only 0 exists in Cluster mode.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	Database *int32 `json:"database,omitempty"`

	// clientName is set with CLIENT SETNAME on every connection (node-redis name).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="clientName must be printable ASCII without spaces"
	ClientName string `json:"clientName,omitempty"`
}

// ReconnectStrategyType is the shape of the reconnect strategy (node-redis
// socket.reconnectStrategy: false, a number, or a function).
// +kubebuilder:validation:Enum=None;FixedDelay;ExponentialBackoff
type ReconnectStrategyType string

const (
	// ReconnectNone never reconnects (node-redis false).
	ReconnectNone ReconnectStrategyType = "None"
	// ReconnectFixedDelay waits delay before every attempt (node-redis number).
	ReconnectFixedDelay ReconnectStrategyType = "FixedDelay"
	// ReconnectExponentialBackoff waits min(2^retries*base, cap) + random(0, jitter).
	ReconnectExponentialBackoff ReconnectStrategyType = "ExponentialBackoff"
)

// ReconnectStrategy says what apps do after a connection is lost. It is rendered into the
// config apps read; the controller itself always retries on its health interval.
// +kubebuilder:validation:XValidation:rule="self.type == 'FixedDelay' ? has(self.delay) : !has(self.delay)",message="delay is required for FixedDelay and only allowed there"
// +kubebuilder:validation:XValidation:rule="self.type == 'ExponentialBackoff' || (!has(self.base) && !has(self.cap) && !has(self.jitter))",message="base, cap and jitter are only allowed with ExponentialBackoff"
// +kubebuilder:validation:XValidation:rule="!has(self.base) || !has(self.cap) || !self.base.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || !self.cap.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.base) <= duration(self.cap)",message="base must not exceed cap"
type ReconnectStrategy struct {
	// type is None, FixedDelay or ExponentialBackoff (default).
	// +optional
	// +kubebuilder:default=ExponentialBackoff
	Type ReconnectStrategyType `json:"type,omitempty"`

	// delay between attempts, for FixedDelay.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1ms') && duration(self) <= duration('1h')",message="delay must be a duration such as 500ms, between 1ms and 1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	Delay *metav1.Duration `json:"delay,omitempty"`

	// base of the exponential backoff (default 50ms).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1ms') && duration(self) <= duration('1h')",message="base must be a duration such as 50ms, between 1ms and 1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	Base *metav1.Duration `json:"base,omitempty"`

	// cap is the longest backoff before jitter (default 2s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1ms') && duration(self) <= duration('1h')",message="cap must be a duration such as 2s, between 1ms and 1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	Cap *metav1.Duration `json:"cap,omitempty"`

	// jitter is the upper bound of the random delay added to each backoff (default 200ms).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) <= duration('1h')",message="jitter must be a duration such as 200ms, at most 1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	Jitter *metav1.Duration `json:"jitter,omitempty"`
}

// StaticAddressMapping maps one announced node address to the address to dial instead.
type StaticAddressMapping struct {
	// announced is the address the node announces (CLUSTER SHARDS, MOVED/ASK), host:port.
	// +required
	Announced HostPort `json:"announced"`

	// reachable is the address clients dial instead, host:port.
	// +required
	Reachable HostPort `json:"reachable"`
}

// AddressType says which reachable address a Service endpoint maps to.
// +kubebuilder:validation:Enum=PodDNS;ClusterIP;LoadBalancer;NodePort
type AddressType string

const (
	// AddressTypePodDNS maps to <endpoint hostname>.<service>.<namespace>.svc.<clusterDomain>:port
	// (headless StatefulSet Services; matches certificates issued for pod DNS names).
	AddressTypePodDNS AddressType = "PodDNS"
	// AddressTypeClusterIP maps to the Service's clusterIP:port (one Service per node).
	AddressTypeClusterIP AddressType = "ClusterIP"
	// AddressTypeLoadBalancer maps to the Service's load balancer ingress IP or hostname:port.
	AddressTypeLoadBalancer AddressType = "LoadBalancer"
	// AddressTypeNodePort maps to the endpoint's Node ExternalIP (else InternalIP):nodePort.
	AddressTypeNodePort AddressType = "NodePort"
)

// ServiceAddressSource derives mappings from Services and their EndpointSlices: every ready
// endpoint address A with target port P maps A:P to the address addressType names.
// +kubebuilder:validation:XValidation:rule="!(has(self.port) && has(self.ports))",message="set port or ports, not both"
type ServiceAddressSource struct {
	// selector chooses Services in the RedisConnection's namespace by label. It must have
	// matchLabels or matchExpressions: an empty selector would select every Service.
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="selector must have matchLabels or matchExpressions: an empty selector selects every Service in the namespace"
	// +kubebuilder:validation:XValidation:rule="(!has(self.matchLabels) || size(self.matchLabels) <= 64) && (!has(self.matchExpressions) || size(self.matchExpressions) <= 16)",message="selector may have at most 64 matchLabels and 16 matchExpressions"
	Selector metav1.LabelSelector `json:"selector"`

	// addressType is PodDNS, ClusterIP, LoadBalancer or NodePort.
	// +required
	AddressType AddressType `json:"addressType"`

	// port is the name or number of the Service port that carries Redis. Unset: the port named
	// "redis", else the Service's only port.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : (size(self) >= 1 && size(self) <= 15)",message="port must be a port number from 1 to 65535 or a Service port name of at most 15 characters"
	Port *intstr.IntOrString `json:"port,omitempty"`

	// ports are several Service ports to map, by name or number, instead of port: a pod that
	// serves Redis and Sentinel on one address (Bitnami: 6379 and 26379) maps both. Each
	// endpoint address maps once per port (a port listed twice maps the same entry once).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:XIntOrString
	// +kubebuilder:validation:XValidation:rule="self.all(p, type(p) == int ? (p >= 1 && p <= 65535) : (size(p) >= 1 && size(p) <= 15))",message="ports must be port numbers from 1 to 65535 or Service port names of at most 15 characters"
	Ports []intstr.IntOrString `json:"ports,omitempty"`
}

// NodeAddressMap turns announced node addresses into reachable ones (node-redis
// nodeAddressMap). Static entries win over entries derived from Services.
type NodeAddressMap struct {
	// static mappings, announced host:port -> reachable host:port.
	// +optional
	// +listType=map
	// +listMapKey=announced
	// +kubebuilder:validation:MaxItems=1000
	Static []StaticAddressMapping `json:"static,omitempty"`

	// fromServices derives mappings from Services selected by label and their EndpointSlices.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	FromServices []ServiceAddressSource `json:"fromServices,omitempty"`
}

// HealthCheck configures how often and how patiently the controller checks every node.
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || !has(self.timeout) || !self.interval.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || !self.timeout.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') || duration(self.timeout) < duration(self.interval)",message="timeout must be shorter than interval"
type HealthCheck struct {
	// interval between health checks and topology refreshes (default 30s).
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="interval must be a duration such as 30s, between 1s and 24h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	Interval *metav1.Duration `json:"interval,omitempty"`

	// timeout for one node's check (default 2s).
	// +optional
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) >= duration('10ms') && duration(self) <= duration('1m')",message="timeout must be a duration such as 2s, between 10ms and 1m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// Output names the ConfigMap and Secret the controller renders for apps.
type Output struct {
	// configMapName is the ConfigMap with config.json (no secret material). Default: the
	// RedisConnection's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="configMapName must be a lowercase DNS subdomain"
	ConfigMapName string `json:"configMapName,omitempty"`

	// secretName is the Secret with credentials, certificates and Service Binding keys.
	// Default: the RedisConnection's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretName must be a lowercase DNS subdomain"
	SecretName string `json:"secretName,omitempty"`

	// readerRoleName, when set, makes the controller render a Role of this name that grants
	// get and watch on exactly the two outputs (resourceNames), for apps that read their
	// config through the Kubernetes API (pkg/client/kubesource) instead of a volume: granting an
	// app access is then one RoleBinding to this Role. Unset: no Role (one rendered before is
	// deleted).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="readerRoleName must be a lowercase DNS subdomain"
	ReaderRoleName string `json:"readerRoleName,omitempty"`

	// socketPath, in Standalone mode, is a Unix socket apps dial instead of the root node (a
	// Redis sidecar sharing its socket through an emptyDir): config.json carries it as
	// node-redis's defaults.socket.path. It changes only what apps dial. The controller runs in
	// another pod and cannot reach an app's socket: it keeps discovering and health-checking
	// the server through rootNodes, which must still name a TCP address the controller reaches
	// (the same server, e.g. through a Service). Not with TLS (Redis serves its Unix socket in
	// plaintext) and not in Cluster mode (a cluster client must reach every node by address).
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=107
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/') && !self.endsWith('/')",message="socketPath must be an absolute file path, e.g. /var/run/redis/redis.sock"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)\\\\.\\\\.?(/|$)') && !self.contains('//')",message="socketPath must be a clean path: no '.' or '..' segments, no '//'"
	SocketPath string `json:"socketPath,omitempty"`
}

// RedisConnectionSpec declares how apps reach one Redis Cluster, standalone server, or master
// with replicas behind Sentinel.
// +kubebuilder:validation:XValidation:rule="self.mode == 'Sentinel' || (has(self.rootNodes) && size(self.rootNodes) >= 1)",message="spec.rootNodes is required in Cluster and Standalone modes"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Sentinel' || !has(self.rootNodes)",message="Sentinel mode takes no spec.rootNodes: the master and replicas are discovered from the sentinels; list the sentinels in spec.sentinel.rootNodes"
// +kubebuilder:validation:XValidation:rule="(self.mode == 'Sentinel') == has(self.sentinel)",message="spec.sentinel is required in Sentinel mode and only allowed there"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Standalone' || (has(self.rootNodes) && size(self.rootNodes) == 1)",message="Standalone mode takes exactly one root node"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Standalone' || !(has(self.useReplicas) && self.useReplicas)",message="useReplicas is only valid in Cluster and Sentinel modes"
// +kubebuilder:validation:XValidation:rule="self.mode == 'Cluster' || !(has(self.minimizeConnections) && self.minimizeConnections)",message="minimizeConnections is only valid in Cluster mode"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Cluster' || !has(self.defaults) || !has(self.defaults.database) || self.defaults.database == 0",message="Cluster mode only has database 0"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Cluster' || !has(self.rootNodes) || self.rootNodes.all(n, !has(n.url) || !n.url.matches('/0*[1-9][0-9]*$'))",message="Cluster mode only has database 0: remove the /db-number from rootNodes urls"
// +kubebuilder:validation:XValidation:rule="!has(self.rootNodes) || self.rootNodes.all(n, !has(n.url) || n.url.startsWith('rediss://') == (has(self.defaults) && has(self.defaults.tls) && self.defaults.tls.enabled))",message="rootNodes url schemes must match spec.defaults.tls.enabled: rediss:// with TLS, redis:// without"
// +kubebuilder:validation:XValidation:rule="self.mode == 'Standalone' || !has(self.output) || !has(self.output.socketPath)",message="output.socketPath is for Standalone mode only: a Redis Cluster or Sentinel client must reach every node (and every failover's new master) by its address, never through one Unix socket"
// +kubebuilder:validation:XValidation:rule="!has(self.output) || !has(self.output.socketPath) || !(has(self.defaults) && has(self.defaults.tls) && self.defaults.tls.enabled)",message="output.socketPath does not go with TLS: Redis serves its Unix socket in plaintext (set spec.defaults.tls.enabled: false)"
type RedisConnectionSpec struct {
	// mode is Cluster (default), Standalone or Sentinel.
	// +optional
	// +kubebuilder:default=Cluster
	Mode Mode `json:"mode,omitempty"`

	// sentinel names the master and the Sentinels that watch it: required in Sentinel mode and
	// only allowed there.
	// +optional
	Sentinel *SentinelSpec `json:"sentinel,omitempty"`

	// rootNodes seed topology discovery; three are enough for a cluster of any size. Required
	// in Cluster and Standalone modes; not allowed in Sentinel mode (the master and its
	// replicas are discovered from spec.sentinel.rootNodes).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(a, (!has(a.url) && !has(a.host)) || self.exists_one(b, (has(a.url) && has(b.url) && (a.url.lowerAscii() == b.url.lowerAscii() || a.url + ':6379' == b.url || b.url + ':6379' == a.url)) || (has(a.url) && has(b.host) && (!has(b.port) || b.port == 6379) && (a.url == 'redis://' + b.host || a.url == 'rediss://' + b.host || a.url == 'redis://' + b.host + ':6379' || a.url == 'rediss://' + b.host + ':6379')) || (has(b.url) && has(a.host) && (!has(a.port) || a.port == 6379) && (b.url == 'redis://' + a.host || b.url == 'rediss://' + a.host || b.url == 'redis://' + a.host + ':6379' || b.url == 'rediss://' + a.host + ':6379')) || (has(a.host) && has(b.host) && a.host.lowerAscii() == b.host.lowerAscii() && (has(a.port) ? a.port : 6379) == (has(b.port) ? b.port : 6379))))",message="rootNodes must not list the same node twice (the same url, or the same host and port; the port defaults to 6379 in both forms)"
	RootNodes []RootNode `json:"rootNodes,omitempty"`

	// defaults apply to every node connection.
	// +optional
	Defaults *NodeDefaults `json:"defaults,omitempty"`

	// controllerACL names the Secret with the ACL user the controller itself connects with for
	// discovery and health checks. Unset: spec.defaults.acl. It is never rendered into the
	// outputs, so the controller can run with the minimal ACL (PING, ROLE, INFO, CLUSTER SHARDS,
	// SLOTS, INFO, MYID) while apps get their own user from spec.defaults.acl.
	// +optional
	ControllerACL *ACLCredentials `json:"controllerACL,omitempty"`

	// useReplicas sends read-only commands to replicas too (Cluster and Sentinel modes).
	// +optional
	UseReplicas bool `json:"useReplicas,omitempty"`

	// minimizeConnections connects to nodes lazily, when a command needs them (Cluster mode).
	// +optional
	MinimizeConnections bool `json:"minimizeConnections,omitempty"`

	// maxCommandRedirections bounds MOVED/ASK redirections per command (default 16).
	// +optional
	// +kubebuilder:default=16
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxCommandRedirections *int32 `json:"maxCommandRedirections,omitempty"`

	// autoPipeline batches concurrent commands of an app into pipelines.
	// +optional
	AutoPipeline bool `json:"autoPipeline,omitempty"`

	// reconnectStrategy is what apps do after losing a connection (default exponential
	// backoff: min(2^retries*50ms, 2s) + 0-200ms).
	// +optional
	ReconnectStrategy *ReconnectStrategy `json:"reconnectStrategy,omitempty"`

	// nodeAddressMap turns the addresses nodes announce into addresses apps can reach.
	// +optional
	NodeAddressMap *NodeAddressMap `json:"nodeAddressMap,omitempty"`

	// healthCheck configures the controller's topology refresh and node checks.
	// +optional
	// +kubebuilder:default={}
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`

	// output names the rendered ConfigMap and Secret.
	// +optional
	Output *Output `json:"output,omitempty"`

	// scripts are Lua scripts apps call by name, rendered into config.json "scripts".
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Scripts []LuaScript `json:"scripts,omitempty"`

	// functionLibraries are Redis function libraries whose functions apps call by name,
	// rendered into config.json "functions" (declarations) and "rconn.functionLibraries" (code).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=4
	FunctionLibraries []FunctionLibrary `json:"functionLibraries,omitempty"`
}

// Role of a node.
// +kubebuilder:validation:Enum=Master;Replica
type Role string

const (
	// RoleMaster serves writes for its slots.
	RoleMaster Role = "Master"
	// RoleReplica replicates a master.
	RoleReplica Role = "Replica"
)

// Health of a node as the controller's last check saw it.
// +kubebuilder:validation:Enum=Healthy;Unreachable;Unhealthy
type Health string

const (
	// HealthHealthy answered PING and reports cluster_state:ok (Cluster mode).
	HealthHealthy Health = "Healthy"
	// HealthUnreachable could not be connected to through its mapped address.
	HealthUnreachable Health = "Unreachable"
	// HealthUnhealthy answered but failed a check (error reply, cluster_state:fail, loading).
	HealthUnhealthy Health = "Unhealthy"
)

// NodeStatus holds stable facts about one node; latencies go to metrics, not here, so a steady
// state writes nothing.
type NodeStatus struct {
	// id is the cluster node id (empty in Standalone mode).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id,omitempty"`

	// announced is the address the node announces.
	// +required
	// +kubebuilder:validation:MaxLength=261
	Announced string `json:"announced"`

	// mapped is the address dialed after node address mapping.
	// +optional
	// +kubebuilder:validation:MaxLength=261
	Mapped string `json:"mapped,omitempty"`

	// role is Master or Replica.
	// +optional
	Role Role `json:"role,omitempty"`

	// masterID is the id of the master a replica follows.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	MasterID string `json:"masterID,omitempty"`

	// health is Healthy, Unreachable or Unhealthy.
	// +optional
	Health Health `json:"health,omitempty"`
}

// ShardStatus is one master with its replicas and slot ranges.
type ShardStatus struct {
	// masterID is the node id of the shard's master.
	// +required
	// +kubebuilder:validation:MaxLength=64
	MasterID string `json:"masterID"`

	// replicaIDs are the node ids of its replicas.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	ReplicaIDs []string `json:"replicaIDs,omitempty"`

	// slots are the slot ranges the shard serves, "start-end" or "slot".
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16384
	// +kubebuilder:validation:items:MaxLength=16
	Slots []string `json:"slots,omitempty"`
}

// AddressMappingSource tells where an applied mapping came from.
// +kubebuilder:validation:Enum=Static;Service
type AddressMappingSource string

const (
	// MappingSourceStatic came from spec.nodeAddressMap.static.
	MappingSourceStatic AddressMappingSource = "Static"
	// MappingSourceService came from a Service's EndpointSlices.
	MappingSourceService AddressMappingSource = "Service"
)

// AppliedAddressMapping is one entry of the node address map as applied.
type AppliedAddressMapping struct {
	// announced host:port.
	// +required
	// +kubebuilder:validation:MaxLength=261
	Announced string `json:"announced"`

	// reachable host:port.
	// +required
	// +kubebuilder:validation:MaxLength=261
	Reachable string `json:"reachable"`

	// source is Static or Service.
	// +optional
	Source AddressMappingSource `json:"source,omitempty"`

	// service names the Service an entry came from.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Service string `json:"service,omitempty"`
}

// BindingStatus follows the Service Binding specification's "provisioned service" duck type.
type BindingStatus struct {
	// name of the Secret with the binding keys (type, provider, host, port, ...).
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// RedisConnectionStatus is what the controller found.
type RedisConnectionStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, TopologyDiscovered, AddressMapResolved, NodesHealthy,
	// CredentialsResolved, ConfigRendered.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// shardCount is the number of shards (1 in Standalone mode).
	// +optional
	ShardCount int32 `json:"shardCount,omitempty"`

	// nodeCount is the number of nodes found.
	// +optional
	NodeCount int32 `json:"nodeCount,omitempty"`

	// healthyNodeCount is the number of nodes whose last check passed.
	// +optional
	HealthyNodeCount int32 `json:"healthyNodeCount,omitempty"`

	// slotsCovered is how many of the 16384 slots are served (Cluster mode).
	// +optional
	SlotsCovered int32 `json:"slotsCovered,omitempty"`

	// shards of the cluster, ordered by first slot.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	Shards []ShardStatus `json:"shards,omitempty"`

	// nodes of the cluster, ordered by announced address.
	// +optional
	// +listType=map
	// +listMapKey=announced
	// +kubebuilder:validation:MaxItems=2000
	Nodes []NodeStatus `json:"nodes,omitempty"`

	// nodeAddressMap as applied, ordered by announced address.
	// +optional
	// +listType=map
	// +listMapKey=announced
	// +kubebuilder:validation:MaxItems=2000
	NodeAddressMap []AppliedAddressMapping `json:"nodeAddressMap,omitempty"`

	// binding is the Service Binding "provisioned service" reference.
	// +optional
	Binding *BindingStatus `json:"binding,omitempty"`

	// sentinel is what the sentinels said (Sentinel mode only): the master the outputs name,
	// its replicas and the sentinels, with their mapped addresses.
	// +optional
	Sentinel *SentinelStatus `json:"sentinel,omitempty"`
}

// SentinelStatus is the master, replicas and sentinels of a Sentinel-mode RedisConnection.
type SentinelStatus struct {
	// masterName is spec.sentinel.masterName as discovered.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	MasterName string `json:"masterName,omitempty"`

	// master is the last confirmed master: a majority of the sentinels that answered named it
	// and its ROLE, through the map, said master. The outputs name it. An unconfirmed answer
	// (NoQuorum, MasterNotConfirmed, MasterUnknown) keeps it.
	// +optional
	Master *SentinelDataNodeStatus `json:"master,omitempty"`

	// replicas of the master as the agreeing sentinels list them, by announced address.
	// +optional
	// +listType=map
	// +listMapKey=announced
	// +kubebuilder:validation:MaxItems=64
	Replicas []SentinelDataNodeStatus `json:"replicas,omitempty"`

	// sentinels found: the root nodes, then their peers, by announced address.
	// +optional
	// +listType=map
	// +listMapKey=announced
	// +kubebuilder:validation:MaxItems=64
	Sentinels []SentinelPeerStatus `json:"sentinels,omitempty"`

	// answered is how many sentinels answered the last discovery.
	// +optional
	Answered int32 `json:"answered,omitempty"`
	// agreeing is how many of them named the master.
	// +optional
	Agreeing int32 `json:"agreeing,omitempty"`
}

// SentinelDataNodeStatus is the master or a replica of a Sentinel-mode RedisConnection.
type SentinelDataNodeStatus struct {
	// announced is the address the sentinels name.
	// +required
	// +kubebuilder:validation:MaxLength=261
	Announced string `json:"announced"`

	// mapped is the address dialed after node address mapping (empty: dialed as announced).
	// +optional
	// +kubebuilder:validation:MaxLength=261
	Mapped string `json:"mapped,omitempty"`

	// health is Healthy, Unreachable or Unhealthy.
	// +optional
	Health Health `json:"health,omitempty"`

	// masterLinkStatus of a replica as its sentinel reports it ("ok" or "err").
	// +optional
	// +kubebuilder:validation:MaxLength=16
	MasterLinkStatus string `json:"masterLinkStatus,omitempty"`

	// lagKiB is a replica's replication lag behind the master, in whole KiB (so a replica a
	// few bytes behind reads 0 and an idle group writes no status); unset when unknown.
	// +optional
	LagKiB *int64 `json:"lagKiB,omitempty"`
}

// SentinelPeerStatus is one sentinel.
type SentinelPeerStatus struct {
	// announced is the sentinel's address as configured (a root node) or as its peers list it.
	// +required
	// +kubebuilder:validation:MaxLength=261
	Announced string `json:"announced"`

	// mapped is the address dialed after node address mapping (empty: dialed as announced).
	// +optional
	// +kubebuilder:validation:MaxLength=261
	Mapped string `json:"mapped,omitempty"`

	// health is Healthy, Unreachable or Unhealthy.
	// +optional
	Health Health `json:"health,omitempty"`

	// master is the announced address this sentinel names as master (empty: it did not
	// answer, or knows no master by that name).
	// +optional
	// +kubebuilder:validation:MaxLength=261
	Master string `json:"master,omitempty"`
}

// RedisConnection keeps applications connected to a Redis Cluster or server whose announced
// addresses they cannot reach, and renders a ConfigMap + Secret they consume.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rconn,categories=redis
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Shards",type=integer,JSONPath=`.status.shardCount`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodeCount`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.healthyNodeCount`,priority=1
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.defaults) || !has(self.spec.defaults.acl) || self.spec.defaults.acl.secretRef.name != (has(self.spec.output) && has(self.spec.output.secretName) ? self.spec.output.secretName : self.metadata.name)",message="the output Secret (spec.output.secretName, default metadata.name) must differ from spec.defaults.acl.secretRef: the controller would overwrite it"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.controllerACL) || self.spec.controllerACL.secretRef.name != (has(self.spec.output) && has(self.spec.output.secretName) ? self.spec.output.secretName : self.metadata.name)",message="the output Secret (spec.output.secretName, default metadata.name) must differ from spec.controllerACL.secretRef: the controller would overwrite it"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.defaults) || !has(self.spec.defaults.tls) || !has(self.spec.defaults.tls.secretRef) || self.spec.defaults.tls.secretRef.name != (has(self.spec.output) && has(self.spec.output.secretName) ? self.spec.output.secretName : self.metadata.name)",message="the output Secret (spec.output.secretName, default metadata.name) must differ from spec.defaults.tls.secretRef: the controller would overwrite it"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.sentinel) || !has(self.spec.sentinel.acl) || self.spec.sentinel.acl.secretRef.name != (has(self.spec.output) && has(self.spec.output.secretName) ? self.spec.output.secretName : self.metadata.name)",message="the output Secret (spec.output.secretName, default metadata.name) must differ from spec.sentinel.acl.secretRef: the controller would overwrite it"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.sentinel) || !has(self.spec.sentinel.tls) || !has(self.spec.sentinel.tls.secretRef) || self.spec.sentinel.tls.secretRef.name != (has(self.spec.output) && has(self.spec.output.secretName) ? self.spec.output.secretName : self.metadata.name)",message="the output Secret (spec.output.secretName, default metadata.name) must differ from spec.sentinel.tls.secretRef: the controller would overwrite it"
type RedisConnection struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the connection.
	// +required
	Spec RedisConnectionSpec `json:"spec"`

	// status is what the controller observed.
	// +optional
	Status RedisConnectionStatus `json:"status,omitempty"`
}

// RedisConnectionList is a list of RedisConnections.
// +kubebuilder:object:root=true
type RedisConnectionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RedisConnection `json:"items"`
}
