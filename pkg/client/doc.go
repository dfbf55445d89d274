// Package client is what apps import: a go-redis client (cluster or standalone) with node
// address mapping, node-redis connection semantics (options, reconnect strategy, events,
// IsOpen/IsReady) and Open on the configuration the rconn controller renders, hot-reloaded.
//
//	c, err := client.Open(ctx, "/etc/rconn")       // ConfigMap + Secret mount(s)
//	defer c.Close()
//	err = c.Set(ctx, "k", "v", 0).Err()            // c is a redis.UniversalClient
//
// The examples compile with the tests: ExampleOpen and ExampleOpenOptions_OpenMounts (the
// mounts), ExampleNewCluster_nodeAddressMapFunction and ExampleNewCluster_staticNodeAddressMap
// (the node address map), and the reconnect strategies, which run: ExampleExponentialBackoff,
// ExampleFixedDelay, ExampleNoReconnect, ExampleReconnectStrategy and
// ExampleOptions_reconnectStrategy.
//
// # Rendered configuration
//
// config.json (Config, ConfigFileName) carries node-redis createCluster options with their
// node-redis names plus rconn-only fields under "rconn"; credentials and keys come from the
// Secret files (SecretKeyUsername, SecretKeyPassword, SecretKeyCA, SecretKeyCert,
// SecretKeyKey), and only from the Secret: Open takes config.json, and nothing else, from the
// directory that holds it (OpenMounts names both directories). Open watches the mounts (kubelet
// swaps "..data" atomically) and applies a new nodeAddressMap, password and TLS material live.
//
// # Sources and reload rules
//
// A Source supplies Snapshots (config.json plus the Secret's keys, with a version): the mount
// poller behind Open and OpenMounts, or package kubesource, which reads the same two objects
// through the Kubernetes API (a separate package, so that this one links no client-go).
// OpenSource applies every new version by one set of rules: everything is validated before
// anything is applied; a version that does not validate is reported (EventError) and skipped
// while the last good configuration keeps running; a version that cannot be read right now is
// retried with backoff; config.json is used only when its Secret carries its digest
// (SecretKeyConfigDigest, BindSecret; ErrConfigNotBound), so ConfigMap edit rights cannot steer
// where the credentials go; config.json and the Secret apply as a pair (Config.Rconn.SecretToken,
// SecretKeys; ErrSecretPending, bounded by OpenOptions.SecretWait); fields that cannot change
// live are reported with ErrRestartRequired. docs/consuming.md has the details.
//
// # Option mapping (node-redis -> Go)
//
//	createClient({url})                     NewClient(ctx, Options{URL})
//	socket.host/port/path                   Options.Socket.Host/Port/Path
//	socket.tls, servername                  Socket.TLS, Socket.ServerName (+ Options.TLS material)
//	socket.connectTimeout                   Socket.ConnectTimeout
//	socket.reconnectStrategy                Options.ReconnectStrategy (NoReconnect, FixedDelay, func)
//	username, password, database, name      Username, Password, Database, Name
//	createCluster({rootNodes})              NewCluster(ctx, ClusterOptions{RootNodes})
//	defaults                                ClusterOptions.Defaults
//	useReplicas, minimizeConnections        UseReplicas, MinimizeConnections
//	maxCommandRedirections                  MaxCommandRedirections (default 16)
//	nodeAddressMap (object or function)     NodeAddressMap (cluster.StaticMap or a func)
//	client.on(event, fn)                    Options.OnEvent / Client.OnEvent (connect, ready, end, error, reconnecting)
//	cluster.on('node-error', fn) and the     ClusterOptions/OpenOptions.OnNodeEvent, Client.OnNodeEvent
//	other node-* events                     (Event.Node: announced, mapped address, node ID)
//	isOpen, isReady                         IsOpen(), IsReady()
//	close() (quit()): graceful              CloseGraceful(ctx): commands already sent finish
//	destroy() (disconnect()): immediate     Close(): commands in flight fail fast
//	(automatic pipelining)                  Options/ClusterOptions.AutoPipeline, rconn.autoPipeline
//	scripts (defineScript)                  Options/ClusterOptions.Scripts, Client.Run (EVALSHA, EVAL fallback)
//	functions                               Options/ClusterOptions.Functions (loaded), Client.FCall, FCallRO
//
// The default reconnect strategy reconnects (see ReconnectStrategy for why).
//
// # autoPipeline
//
// node-redis and rueidis batch the commands that concurrent callers issue into pipelines. With
// AutoPipeline (or "rconn": {"autoPipeline": true} in config.json) the Client does the same,
// naturally: per node, a command issued while the node's connection is idle goes out at once,
// alone, on its caller's context (the plain go-redis path); the commands issued while an
// exchange is in flight wait and go out together, as one pipeline, as soon as it ends. No
// timer, no goroutine of its own: a lone caller pays nothing and batches grow with the load.
//
// The batching is a go-redis hook on every node client (on the client itself in standalone
// mode), beneath go-redis's slot routing: the Client is still the go-redis client, c.Get(ctx,
// k) keeps its shape and blocks until its own reply, the node address map, TLS and credentials
// apply unchanged, and each command keeps its own reply or error (a WRONGTYPE fails only its
// command; MOVED and ASK are followed per command by go-redis). Blocking commands (BLPOP, XREAD
// BLOCK, WAIT, ...), Watch transactions and Conn run unbatched on their own connections.
// Which chain batches is found through go-redis's documented hook semantics only (a probe,
// never written, through the client's own Process and Pipeline; see autopipeline.go). It is
// off by default: blocking commands are recognised by name, and one the list does not know
// (a module's) would hold its node's batches until it returns (docs/consuming.md).
//
// Trade-offs: a caller whose context ends while its command is queued returns the context's
// error and its command is never sent; once the command is in a batch on the wire the caller
// waits for its reply (ReadTimeout/WriteTimeout, 3s by default, bound it), because a batch
// runs on a context of its own so that no caller's cancellation fails the others. A batch that
// fails on a network error is retried as a whole, like any go-redis pipeline, so a
// non-idempotent command may run twice. Hooks added to node clients through OnNewNode see a
// batch as one pipeline. See docs/benchmarks.md for figures.
package client
