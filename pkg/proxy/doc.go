// Package proxy is rconn-proxy: local listeners, one per Redis Cluster node plus a seed, that
// forward each connection to its node's mapped address (pkg/cluster's Dialer: the node
// address map, the node-ID fallback, TLS origination with the per-node server name and the
// Secret's client certificate), so that clients without an address map (redis-cli -c,
// redis-py 4, Jedis, GUI tools) use a cluster whose nodes announce unreachable addresses.
//
// Only topology is rewritten: replies to CLUSTER SLOTS, SHARDS, NODES (and REPLICAS/SLAVES)
// and top-level -MOVED/-ASK errors name the proxy's listeners; every other byte passes as it
// came. To know which replies those are, both directions are parsed by internal/resp's
// streaming Scanner (scan.go plugs in what the proxy captures; inline commands are split by
// Redis's quoting rules), and each command queues what its replies look like (match.go): CLIENT REPLY OFF/ON/SKIP, RESP3 pushes, HELLO and RESET are followed; RESP2
// pub/sub mode and MONITOR end the counting until RESET (docs/consuming.md lists what is not
// supported). Topology replies are the only thing buffered, bounded by
// Options.MaxTopologyReply; the connection is closed beyond it.
//
// Listeners are opened only for nodes the proxy's own topology read finds (a reply a client
// or node shapes never opens one); a node known down has its listener's socket closed
// (clients get "connection refused"), and once another node serves a dead master's slots its
// listener answers -MOVED to the new owner (health.go, moved.go). Options.AddressPolicy judges
// every dial; connections are capped in total and per listener, idle ones closed, and the
// topology replies all connections buffer are bounded (limits.go).
//
// Sentinel mode (sentinel.go, sentinel_server.go): the seed listener is a sentinel of the
// proxy's own, answering from what a cluster.SentinelInspector confirms (majority + ROLE)
// and naming the proxy's data listeners; nothing a real sentinel sends is forwarded.
// Options.MasterPort adds a listener that always reaches the confirmed master.
//
// Start builds a Proxy from a client.Resolved (client.Watch follows the mounts or kubesource);
// Apply applies a new version live. cmd/rconn-proxy is the binary.
package proxy
