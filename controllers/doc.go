// Package controllers holds the RedisConnection reconciler.
//
// A request reads as its phases, each entered once:
//
//	Reconcile (redisconnection_controller.go)  load the object, build the scope (scope.go),
//	                                           run the phases, then finish
//	phases.go            credentials -> address map -> topology -> health -> outputs: each fills
//	                     the scope and may stop the request; none sets a condition
//	reconcile_status.go  the one status step: status fields (status.go), conditions, Ready,
//	                     Events from transitions, one patch, the requeue (shortest wins)
//	conditions.go        one pure function of the scope per condition, Ready derivation and
//	                     "waiting for" after a blocking failure (table tests: conditions_test.go)
//
// What the phases use:
//
//	credentials.go   ACL and TLS Secrets (read from the API server; metadata-only cache)
//	addressmap.go    spec.nodeAddressMap: static entries, Services and EndpointSlices, Nodes
//	topology.go      pkg/cluster options, the sharing key, classification of discovery errors
//	inspectors.go    the shared inspector pool: background discovery and health per key
//	render.go        config.json and the Secret's data, pure
//	outputs.go       server-side apply of the ConfigMap/Secret, conflicts, pruning
//	readerrole.go    spec.output.readerRoleName's Role
//	secrettoken.go   the token pairing a Secret with its config.json
//	memo.go          what is remembered between requests (outputs, node IDs)
//	watches.go       which RedisConnections an input object concerns (index.go's indexes)
//	metrics.go       the state collector (reads the cache at scrape time) and gauges
//	events.go        the per-RedisConnection Event rate limit
package controllers
