// Package client is what apps import: a go-redis client (cluster or standalone) with node
// address mapping, node-redis connection semantics (options, reconnect strategy, events,
// IsOpen/IsReady) and Open on the configuration the rconn controller renders, hot-reloaded.
//
//	c, err := client.Open(ctx, "/etc/rconn")       // ConfigMap + Secret mount(s)
//	defer c.Close()
//	err = c.Set(ctx, "k", "v", 0).Err()            // c is a redis.UniversalClient
//
// # Rendered configuration
//
// config.json (Config, ConfigFileName) carries node-redis createCluster options with their
// node-redis names plus rconn-only fields under "rconn"; credentials and keys come from the
// Secret files (SecretKeyUsername, SecretKeyPassword, SecretKeyCA, SecretKeyCert,
// SecretKeyKey). Open watches the mounts (kubelet swaps "..data" atomically) and applies a new
// nodeAddressMap, password and TLS material live; a broken update is reported as EventError
// and the last good configuration keeps running.
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
//	isOpen, isReady                         IsOpen(), IsReady()
//	quit()/disconnect()                     Close()
//	(automatic pipelining)                  Options/ClusterOptions.AutoPipeline, rconn.autoPipeline
//
// The default reconnect strategy reconnects (see ReconnectStrategy for why).
//
// # autoPipeline
//
// node-redis and rueidis batch the commands that concurrent callers issue into pipelines. With
// AutoPipeline (or "rconn": {"autoPipeline": true} in config.json) the Client does the same
// through go-redis's blocking AutoPipeliner (experimental in go-redis v9.23): c.Get(ctx, k)
// keeps its shape and blocks until its reply, while the commands of all goroutines waiting at
// that moment go out as one pipeline per node (per shard of slots in cluster mode). The
// AutoPipeliner is itself a redis.UniversalClient, so it becomes the Client's embedded
// UniversalClient: the typed commands and Process are batched; Do, Watch, Subscribe,
// TxPipeline, blocking commands (BLPOP, XREAD BLOCK, ...) and cluster-wide commands (DBSize,
// Script*) run on the go-redis client beneath it, unbatched. Batches use that client's
// connections, so the node address map, TLS and credentials apply unchanged; each command
// keeps its own reply or error (a WRONGTYPE fails only its command), and in cluster mode
// MOVED and ASK are followed per command by go-redis's cluster pipeline path.
//
// Trade-offs: a queued command runs on the AutoPipeliner's context, not the caller's, so a
// per-command deadline or cancellation is not honoured once queued (ReadTimeout/WriteTimeout,
// 3s by default, still bound it); a batch that fails on a network error is retried as a whole,
// so a non-idempotent command may run twice. Direct returns the client beneath, on the same
// connections, for commands that need either. A lone caller gains nothing; the gain grows with
// the number of concurrent callers (see docs/benchmarks.md).
package client
