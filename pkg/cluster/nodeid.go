package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// NodeIDMap maps cluster node IDs to reachable addresses: the fallback for an announced address
// the NodeAddressMap has no entry for. A Redis pod of a StatefulSet that restarts comes back
// under a new pod IP (a new announced address) but, with nodes.conf on its volume, with the same
// node ID; while the app's NodeAddressMap has not caught up with the new IP (a kubelet volume
// syncs up to a minute late), the node is found by its ID: the Dialer asks the cluster
// (CLUSTER SHARDS, through a node it can reach) which node announces that address and dials
// the address mapped for that node's ID. Keys are 40-character node IDs.
type NodeIDMap map[string]Address

// nodeIDLookupInterval is the least time between two topology lookups for unknown addresses
// (a node that stays unknown, dialed again and again by go-redis, costs one lookup per interval).
const nodeIDLookupInterval = 500 * time.Millisecond

// nodeIDCacheTTL is how long an announced address -> node ID answer is used without asking
// again (pod IPs are reused: an old answer must not send a new node's traffic elsewhere for long).
const nodeIDCacheTTL = 10 * time.Second

// lookupKey marks the context of the fallback's own discovery: the dials it makes never fall
// back again (no recursion, no waiting on itself).
type lookupKey struct{}

// idResolver resolves announced addresses through node IDs.
type idResolver struct {
	mu  sync.Mutex
	ids NodeIDMap
	// byAddr is the last lookup's answer: announced address -> node ID, and when it was asked.
	byAddr map[string]string
	at     time.Time
	// lookup runs one topology discovery (the Inspector's Discover); nil: none possible.
	lookup func(ctx context.Context) (*Topology, error)

	lookupMu sync.Mutex // one lookup at a time; waiters use its answer
	lastTry  time.Time
}

// set replaces the node ID map; cached answers for IDs no longer in it are useless and go.
func (r *idResolver) set(m NodeIDMap) {
	c := make(NodeIDMap, len(m))
	for k, v := range m {
		c[k] = v
	}
	r.mu.Lock()
	r.ids = c
	r.mu.Unlock()
}

// cached answers from the last lookup only (no network): the reachable address and the node
// ID. fresh: only an answer younger than nodeIDCacheTTL.
func (r *idResolver) cached(announced string, fresh bool) (Address, string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 || fresh && time.Since(r.at) > nodeIDCacheTTL {
		return Address{}, "", false
	}
	id, ok := r.byAddr[announced]
	if !ok {
		return Address{}, "", false
	}
	a, ok := r.ids[id]
	return a, id, ok
}

// enabled reports whether there is a node ID map and a way to look addresses up.
func (r *idResolver) enabled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids) > 0 && r.lookup != nil
}

// resolve returns the reachable address of the node announced at announced by its node ID,
// asking the cluster when the last answer does not know the address (at most once per
// nodeIDLookupInterval; concurrent callers share one lookup).
func (r *idResolver) resolve(ctx context.Context, announced string) (Address, string, bool) {
	if !r.enabled() || ctx.Value(lookupKey{}) != nil {
		return Address{}, "", false
	}
	if a, id, ok := r.cached(announced, true); ok {
		return a, id, true
	}
	r.lookupMu.Lock()
	defer r.lookupMu.Unlock()
	if a, id, ok := r.cached(announced, true); ok { // answered while waiting
		return a, id, true
	}
	if time.Since(r.lastTry) < nodeIDLookupInterval {
		return Address{}, "", false
	}
	r.lastTry = time.Now()
	t, err := r.lookup(context.WithValue(ctx, lookupKey{}, true))
	if err != nil || t == nil {
		return Address{}, "", false
	}
	byAddr := make(map[string]string, len(t.Nodes))
	for _, n := range t.Nodes {
		if n.ID != "" {
			byAddr[n.Announced] = n.ID
		}
	}
	r.mu.Lock()
	r.byAddr, r.at = byAddr, time.Now()
	r.mu.Unlock()
	return r.cached(announced, true)
}

// forget drops a cached answer that did not work (the address moved on since).
func (r *idResolver) forget(announced string) {
	r.mu.Lock()
	delete(r.byAddr, announced)
	r.mu.Unlock()
}

// ValidateNodeIDMap checks every key is a node ID and every address has a host and a port.
func ValidateNodeIDMap(m NodeIDMap) error {
	for id, a := range m {
		if id == "" || !validNodeID(id) {
			return fmt.Errorf("node ID map: %q is not a node ID (hex digits)", clipID(id))
		}
		if a.Host == "" || a.Port <= 0 || a.Port > 65535 {
			return fmt.Errorf("node ID map[%s]: invalid address %q", id, a.String())
		}
	}
	return nil
}

func clipID(s string) string {
	if len(s) > 48 {
		return s[:48] + "..."
	}
	return s
}
