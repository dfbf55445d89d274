// Package cluster is rconn's embedded Redis Cluster client: topology discovery, node address
// mapping and health checks, on top of go-redis v9. The controller and every app use it.
//
// # Node address mapping
//
// Redis nodes hand clients the addresses they announce (CLUSTER SHARDS/SLOTS, MOVED, ASK).
// When those are pod IPs, names under a domain the client cannot resolve, or ports behind NAT,
// a NodeAddressMap (node-redis nodeAddressMap) says where to dial instead:
//
//	m, err := cluster.StaticMap(map[string]string{
//		"10.0.0.1:6379": "redis-0.example.com:30001",
//	})
//	c, err := cluster.NewClient(cluster.Options{
//		RootNodes:      []cluster.RootNode{{URL: "redis://redis-0.example.com:30001"}},
//		NodeAddressMap: m, // or any func(Address) (Address, bool)
//	})
//	topo, err := c.Connect(ctx)
//	c.Set(ctx, "k", "v", 0)
//
// ExampleStaticMap runs a lookup in such a map; pkg/client's
// ExampleNewCluster_nodeAddressMapFunction shows the map as a function.
//
// The map applies to discovery, to every node connection and to MOVED/ASK targets: go-redis
// calls the mapping Dialer with the announced address in every case. With TLS the handshake
// checks the mapped host (or NodeOptions.TLSServerName), so a map to the names in the
// certificates fixes "x509: cannot validate certificate for 10.0.0.1 because it doesn't
// contain any IP SANs". SetNodeAddressMap swaps the map atomically; pooled connections whose
// entry changed are dropped before their next use.
//
// Options.Dial is the base dial function beneath the map (net.Dialer by default): the seam for
// SOCKS proxies and port-forwards, and for tests that must never resolve a name.
//
// # Option mapping (node-redis createCluster -> Options)
//
//	rootNodes               RootNodes (URL or Address)
//	defaults                Defaults (Username, Password, TLS, TLSServerName, ConnectTimeout, ClientName)
//	useReplicas             UseReplicas (go-redis ReadOnly + RouteRandomly)
//	minimizeConnections     MinimizeConnections (Connect only discovers)
//	maxCommandRedirections  MaxCommandRedirections (default 16; go-redis's own default is 3)
//	nodeAddressMap          NodeAddressMap (StaticMap or a function)
//	getSlotMaster(slot)     Client.SlotMaster(ctx, slot)
//
// Keyless commands such as PUBLISH, which the server forwards, are spread over the masters.
//
// # Untrusted servers
//
// A tenant names the root nodes and the servers announce the rest, so everything a server
// sends is untrusted. Every Inspector connection (discovery and health) is wrapped with
// LimitConn: the RESP byte stream is validated below go-redis's reader against Limits
// (Options.Limits, nil: DefaultLimits) before go-redis allocates what a header declares, and
// a violation fails the read with a *ProtocolError (ErrReplyTooLarge or ErrProtocol) whose
// text is fixed. A parsed topology beyond MaxTopologyNodes/MaxTopologyShards fails with
// ErrTopologyTooLarge. Every Inspector read and write has a deadline (ReadTimeout,
// WriteTimeout, default DefaultInspectorTimeout), and Options.MaxTimeout caps every timeout.
// Discover asks its candidates in parallel: a silent root costs nothing while another
// answers. Classify turns any error into an ErrorClass and a fixed message naming only the
// address: a closed port, a filtered one, an open non-Redis service and, with TLS, a server
// certificate that failed verification (a TLS listener, not proven a Redis) all read "no Redis
// server answered at <addr>"; CertificateFailure names the certificate problem for callers
// acting for whoever configured the connection. AddressPolicy (Options.AddressPolicy, or
// AddressPolicy.Dial around any DialFunc) refuses denied targets (link-local and metadata
// addresses and loopback by default, plus the caller's CIDRs and exact ip:port entries)
// before a byte is written.
//
// # Minimal ACL for the controller
//
// Discovery and health checks need only:
//
//	ACL SETUSER rconn on >PASSWORD -@all +ping +role +info +cluster|shards +cluster|slots +cluster|info +cluster|myid
//
// Without +cluster|shards discovery falls back to CLUSTER SLOTS (node health is then unknown
// until checked). Discovery also falls back to CLUSTER SLOTS on servers older than Redis 7.
// Connections send CLIENT SETNAME when a client name is set and SELECT for a non-zero database:
// add +client|setname and +select then, or every connection fails with NOPERM.
//
// # Sentinel
//
// Options.Sentinel describes a master with replicas watched by Redis Sentinel (node-redis
// createSentinel: name, sentinelRootNodes, sentinelClientOptions; nodeClientOptions are
// Options.Defaults). The sentinels have their own credentials and TLS
// (SentinelOptions.Defaults); the map, base dial, AddressPolicy, Limits (with caps for the
// SENTINEL commands and pub/sub messages), ReplyBudget and timeouts are shared:
//
//	si, err := cluster.NewSentinelInspector(cluster.Options{
//		Defaults:       cluster.NodeOptions{Username: "app", Password: pw, TLS: dataTLS},
//		NodeAddressMap: m, // covers data ports (6379) and sentinel ports (26379)
//		Sentinel: &cluster.SentinelOptions{
//			MasterName: "mymaster",
//			RootNodes:  []cluster.RootNode{{URL: "redis://redis-0.redis-headless.ns.svc:26379"}},
//			Defaults:   cluster.NodeOptions{Password: sentinelPW, TLS: sentinelTLS},
//		},
//	})
//	topo, err := si.Discover(ctx)   // err: no sentinel answered (Classify it)
//	switch topo.Reason {            // SentinelReasons: MasterConfirmed, NoQuorum, MasterNotConfirmed, MasterUnknown
//	case cluster.SentinelMasterConfirmed: // topo.Master.Announced / .Mapped
//	}
//	health := si.CheckHealth(ctx, topo, 0) // health.Data (master, replicas), health.Sentinels
//	stop := si.Subscribe(func(e cluster.SentinelEvent) { enqueue() }) // +switch-master, +sdown, -sdown, +odown, resubscribed
//	defer stop()
//
// Discover asks every reachable sentinel (roots, their peers, at most MaxTopologyNodes) for
// the master by name, its replicas and its peers; the master is trusted only when more than
// half of the sentinels that answered name it and its ROLE, through the map, is master. A
// sentinel event is a hint to Discover again, never the truth. Minimal ACL on the sentinels:
//
//	ACL SETUSER rconn on >PASSWORD -@all +ping +role +auth +sentinel|get-master-addr-by-name +sentinel|replicas +sentinel|sentinels +subscribe &+switch-master &+sdown &-sdown &+odown
//
// and on the data nodes +ping +role (as above).
package cluster
