package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Node addresses for NodePort mappings come from the manager's informer cache of Nodes, never
// from an API request per endpoint: EndpointSlices are written by tenants, and an endpoint may
// name any node name, existing or not. One list + watch of all Nodes (stripped by
// CacheTransform to name and addresses, a few hundred bytes a Node) replaces a GET per
// endpoint per reconcile. The informer starts at the first NodePort lookup, so managers whose
// RedisConnections use no NodePort source never list Nodes (and need no Node rights).

// nodeSource is where Node addresses are read: the manager's cache (cache.Cache).
type nodeSource interface {
	client.Reader
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

const (
	// maxNodeLookups bounds the distinct Node names one RedisConnection's map looks up per
	// reconcile: a Redis Cluster has at most 1,000 nodes, so its pods run on at most 1,000
	// Nodes. Endpoints on further Nodes are left out and reported.
	maxNodeLookups = 1000
	// nodeCacheRetry is when a map that waited for the Node cache looks again.
	nodeCacheRetry = 5 * time.Second
)

// whyNodeCacheLoading is the claim of an endpoint whose Node was not looked up because the
// Node cache is not usable yet.
const whyNodeCacheLoading = "Node cache not synced"

// errNodeCacheNotSynced: the Node informer has not finished its first list (it is starting, or
// the manager may not list Nodes).
var errNodeCacheNotSynced = fmt.Errorf("the manager's Node cache has not synced yet (it needs list and watch on nodes)")

// nodeLookup resolves Node names to addresses for one buildAddressMap: each name once, at most
// maxNodeLookups names.
type nodeLookup struct {
	src    nodeSource
	synced bool
	err    error // errNodeCacheNotSynced, or the cache's error
	addrs  map[string]string
	// over counts endpoints left out because their Node was beyond maxNodeLookups.
	over int
}

// start checks once that the Node cache is usable, without waiting for it.
func (n *nodeLookup) start(ctx context.Context) {
	if n.synced || n.err != nil {
		return
	}
	if n.src == nil {
		n.err = errNodeCacheNotSynced
		return
	}
	inf, err := n.src.GetInformer(ctx, &corev1.Node{}, cache.BlockUntilSynced(false))
	switch {
	case err != nil:
		n.err = fmt.Errorf("starting the Node cache: %w", err)
	case !inf.HasSynced():
		n.err = errNodeCacheNotSynced
	default:
		n.synced = true
	}
}

// address returns a Node's ExternalIP, else its InternalIP ("" when the Node does not exist or
// has neither). ok is false when the name is beyond the bound or the cache is not usable.
func (n *nodeLookup) address(ctx context.Context, name string) (addr string, ok bool, err error) {
	if a, seen := n.addrs[name]; seen {
		return a, true, nil
	}
	n.start(ctx)
	if n.err != nil {
		return "", false, nil
	}
	if len(n.addrs) >= maxNodeLookups {
		n.over++
		return "", false, nil
	}
	node := &corev1.Node{}
	if err := n.src.Get(ctx, client.ObjectKey{Name: name}, node); err != nil && !apierrors.IsNotFound(err) {
		return "", false, fmt.Errorf("reading Node %s from the cache: %w", name, err)
	}
	if n.addrs == nil {
		n.addrs = map[string]string{}
	}
	a := nodeAddress(node)
	n.addrs[name] = a
	return a, true, nil
}

// nodeAddress is a Node's ExternalIP, else its InternalIP.
func nodeAddress(node *corev1.Node) string {
	var internal string
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeExternalIP:
			return a.Address
		case corev1.NodeInternalIP:
			if internal == "" {
				internal = a.Address
			}
		}
	}
	return internal
}

// stripNode keeps what nodeAddress reads (name, the ExternalIP and InternalIP addresses) and
// what the informer needs (resourceVersion, uid): a Node's status otherwise carries its images,
// conditions and capacity, kilobytes per Node.
func stripNode(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeExternalIP || a.Type == corev1.NodeInternalIP {
			out.Status.Addresses = append(out.Status.Addresses, a)
		}
	}
	return out
}
