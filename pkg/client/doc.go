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
//
// The default reconnect strategy reconnects (see ReconnectStrategy for why).
package client
