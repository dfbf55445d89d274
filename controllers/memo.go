package controllers

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// What the reconciler remembers between requests, per RedisConnection (dropped by forget).

// outputState is what a RedisConnection's outputs were verified to hold: content hashes at
// resourceVersions, read from the API server or returned by our own apply.
type outputState struct {
	uid, cmName, secName, cmHash, secHash string
	cmRV, secRV                           string
}

// outputMemo lets a reconcile whose rendered content did not change skip reading the outputs
// from the API server: when the cached metadata of both objects still shows the resourceVersions
// verified last, nobody changed them since (a hand edit or delete changes the resourceVersion,
// and its watch event triggers a reconcile that then reads and repairs the object).
type outputMemo struct {
	mu     sync.Mutex
	m      map[types.NamespacedName]outputState
	tokens map[types.NamespacedName]tokenState // secrettoken.go
}

func (o *outputMemo) current(ctx context.Context, c client.Reader, key types.NamespacedName, ns string, want outputState) bool {
	o.mu.Lock()
	have, ok := o.m[key]
	o.mu.Unlock()
	if !ok || have.uid != want.uid || have.cmName != want.cmName || have.secName != want.secName ||
		have.cmHash != want.cmHash || have.secHash != want.secHash {
		return false
	}
	for _, x := range []struct{ kind, name, rv string }{{"ConfigMap", want.cmName, have.cmRV}, {"Secret", want.secName, have.secRV}} {
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(x.kind))
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: x.name}, meta); err != nil || meta.ResourceVersion != x.rv {
			return false
		}
	}
	return true
}

func (o *outputMemo) set(key types.NamespacedName, s outputState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[types.NamespacedName]outputState{}
	}
	o.m[key] = s
}

func (o *outputMemo) drop(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, key)
	delete(o.tokens, key)
}

// nodeIDMemo holds each RedisConnection's last rendered rconn.nodeIds (for stickyNodeIDs).
type nodeIDMemo struct {
	mu sync.Mutex
	m  map[types.NamespacedName]map[string]pkgclient.MappedAddress
}

func (o *nodeIDMemo) get(key types.NamespacedName) map[string]pkgclient.MappedAddress {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[key]
}

func (o *nodeIDMemo) set(key types.NamespacedName, ids map[string]pkgclient.MappedAddress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[types.NamespacedName]map[string]pkgclient.MappedAddress{}
	}
	if len(ids) == 0 {
		delete(o.m, key)
		return
	}
	o.m[key] = ids
}

func (o *nodeIDMemo) drop(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, key)
}
