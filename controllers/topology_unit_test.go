package controllers

import (
	"errors"
	"testing"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// A map the controller cannot turn into pkg/cluster's must stop clusterOptions (a non-credential
// error), not silently dial every node by its announced address.
func TestClusterOptionsRefusesAnUnusableAddressMap(t *testing.T) {
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "redis-0", Port: 6379}}}}
	for name, m := range map[string]*addressMap{
		"bad reachable": {entries: map[string]rconnv1.AppliedAddressMapping{"redis-0:6379": {Announced: "redis-0:6379", Reachable: "10.0.0.1"}}},
		"bad announced": {entries: map[string]rconnv1.AppliedAddressMapping{"redis-0": {Announced: "redis-0", Reachable: "10.0.0.1:6379"}}},
	} {
		t.Run(name, func(t *testing.T) {
			r := &RedisConnectionReconciler{}
			o, _, err := r.clusterOptions(rc, &credentials{}, m)
			if err == nil {
				t.Fatalf("clusterOptions: no error; NodeAddressMap nil: %t", o.NodeAddressMap == nil)
			}
			if _, ok := asCredentialError(err); ok {
				t.Fatalf("a map error is not a credential error: %v", err)
			}
			if !errors.Is(err, cluster.ErrInvalidOptions) {
				t.Fatalf("want an error wrapping cluster.ErrInvalidOptions, got %v", err)
			}
		})
	}
}
