package controllers

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// Field indexes of RedisConnections in the manager's cache (Cluster API util/index style): the
// watch handlers find the RedisConnections an event concerns through them instead of listing
// every RedisConnection of the namespace.
const (
	// SecretRefsField indexes RedisConnections by the name of every Secret they reference
	// (controllerACL, defaults.acl, defaults.tls): a Secret's event enqueues exactly its users.
	SecretRefsField = "rconn.dev/secret-refs"
	// ServiceSourcesField holds "true" for RedisConnections with fromServices sources: a Service
	// or EndpointSlice event matches selectors only of those.
	ServiceSourcesField = "rconn.dev/has-service-sources"
)

// hasServiceSources is ServiceSourcesField's one value.
const hasServiceSources = "true"

// AddIndexes registers the RedisConnection field indexes with the manager's cache.
func AddIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &rconnv1.RedisConnection{}, SecretRefsField, RedisConnectionBySecretRef); err != nil {
		return fmt.Errorf("indexing RedisConnections by %s: %w", SecretRefsField, err)
	}
	if err := indexer.IndexField(ctx, &rconnv1.RedisConnection{}, ServiceSourcesField, RedisConnectionByServiceSources); err != nil {
		return fmt.Errorf("indexing RedisConnections by %s: %w", ServiceSourcesField, err)
	}
	return nil
}

// RedisConnectionBySecretRef is the index function of SecretRefsField: the names of the Secrets
// the RedisConnection references.
func RedisConnectionBySecretRef(o client.Object) []string {
	return secretRefs(mustRedisConnection(o))
}

// RedisConnectionByServiceSources is the index function of ServiceSourcesField: "true" when the
// RedisConnection maps addresses from Services, else nothing.
func RedisConnectionByServiceSources(o client.Object) []string {
	rc := mustRedisConnection(o)
	if rc.Spec.NodeAddressMap != nil && len(rc.Spec.NodeAddressMap.FromServices) > 0 {
		return []string{hasServiceSources}
	}
	return nil
}

// mustRedisConnection is the RedisConnection an index function was given; anything else is a
// programming error (the index is registered for RedisConnections only).
func mustRedisConnection(o client.Object) *rconnv1.RedisConnection {
	rc, ok := o.(*rconnv1.RedisConnection)
	if !ok {
		panic(fmt.Sprintf("expected a *RedisConnection, got %T", o))
	}
	return rc
}
