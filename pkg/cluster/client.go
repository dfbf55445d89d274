package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client is a go-redis ClusterClient that dials through the node address map, with TLS per
// node, ACL credentials, and node-redis option semantics. It is a redis.UniversalClient: pass
// it to anything that takes one. Topology and health come from its Inspector, which shares the
// dialer (and so the map).
type Client struct {
	*redis.ClusterClient
	inspector *Inspector
	o         *resolved
}

var _ redis.UniversalClient = (*Client)(nil)

// goRedisDefaultTimeout is go-redis's read timeout when none is set (clipped to MaxTimeout).
const goRedisDefaultTimeout = 5 * time.Second

// NewClient validates the options and returns a client; it connects lazily (see Connect).
func NewClient(o Options) (*Client, error) {
	if o.Standalone {
		return nil, fmt.Errorf("%w: NewClient is for clusters; use a go-redis Client with NewDialer for a standalone server", ErrInvalidOptions)
	}
	r, err := resolve(o)
	if err != nil {
		return nil, err
	}
	if err := ValidateNodeIDMap(o.NodeIDMap); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	d := r.newDialer()
	co := &redis.ClusterOptions{
		Addrs:               r.rootAddrs(),
		Dialer:              d.DialContext,
		Username:            r.Defaults.Username,
		Password:            r.Defaults.Password,
		CredentialsProvider: r.Defaults.CredentialsProvider,
		ClientName:          r.Defaults.ClientName,
		DialTimeout:         r.Defaults.ConnectTimeout,
		MaxRedirects:        r.MaxCommandRedirections,
		ReadOnly:            r.UseReplicas,
		RouteRandomly:       r.UseReplicas,
		PoolSize:            r.PoolSize,
		ReadTimeout:         r.clientTimeout(r.ReadTimeout, goRedisDefaultTimeout),
		WriteTimeout:        r.clientTimeout(r.WriteTimeout, r.clientTimeout(r.ReadTimeout, goRedisDefaultTimeout)),

		MaintNotificationsConfig: NoMaintNotifications(),
	}
	if r.MaxCommandRedirections < 0 {
		co.MaxRedirects = -1
	}
	// Root nodes with their own credentials: go-redis has one credential set per cluster, so the
	// URL's credentials win when Defaults has none (the common single-user case).
	if co.Username == "" && co.Password == "" && co.CredentialsProvider == nil {
		for _, rt := range r.roots {
			if rt.hasCreds {
				co.Username, co.Password = rt.username, rt.password
				break
			}
		}
	}
	// One dial per attempt: the cluster's own retry loop (MaxCommandRedirections attempts with
	// backoff, re-routing after each state reload) is what rides out a failover; go-redis's
	// per-pool dial retries would spend that budget redialling the dead node.
	co.DialerRetries = 1
	// Retry backoff 10 ms doubling to 4 s (randomised, go-redis's RetryBackoff): with the default
	// 16 attempts a command keeps trying for ~15-30 s, which rides out a Redis failover
	// (failure detection after cluster-node-timeout plus an election) instead of failing in the
	// middle of it (go-redis's 1 s cap gives up after ~5-10 s). Set MaxCommandRedirections lower
	// to fail sooner; ctx deadlines bound every command as usual.
	co.MaxRetryBackoff = DefaultMaxRetryBackoff
	c := &Client{ClusterClient: redis.NewClusterClient(co), inspector: newInspector(r, d), o: r}
	d.SetNodeIDs(o.NodeIDMap)
	d.SetNodeIDLookup(c.inspector.Discover)
	c.OnNewNode(func(n *redis.Client) { n.AddHook(reloadOnNetworkError{c.ClusterClient}) })
	return c, nil
}

// DefaultMaxRetryBackoff caps the backoff between a command's retries (see NewClient).
const DefaultMaxRetryBackoff = 4 * time.Second

// reloadOnNetworkError asks for a slot map reload when a node cannot be reached or its
// connection broke. go-redis reloads on MOVED/ASK/READONLY and on a timer only: after a
// master dies, its retries keep going to the dead node until the timer fires, long after a
// replica took over. LazyReload is coalesced (one reload at a time, 200 ms apart).
type reloadOnNetworkError struct{ cc *redis.ClusterClient }

func (h reloadOnNetworkError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnNetworkError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if isNetworkError(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnNetworkError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if isNetworkError(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// isNetworkError: the node is unreachable or the connection broke (not a Redis error reply,
// not the caller's cancellation).
func isNetworkError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var de *DialError
	var ne net.Error
	return errors.As(err, &de) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// Connect discovers the topology and, unless MinimizeConnections, connects to every node the
// client routes to (masters; and replicas with UseReplicas), so the first command finds them
// ready. It returns the topology.
func (c *Client) Connect(ctx context.Context) (*Topology, error) {
	t, err := c.inspector.Discover(ctx)
	if err != nil {
		return nil, err
	}
	if c.o.MinimizeConnections {
		return t, nil
	}
	ping := func(ctx context.Context, n *redis.Client) error { return n.Ping(ctx).Err() }
	if c.o.UseReplicas {
		err = c.ForEachShard(ctx, ping)
	} else {
		err = c.ForEachMaster(ctx, ping)
	}
	if err != nil {
		return t, fmt.Errorf("connecting to cluster nodes: %w", err)
	}
	return t, nil
}

// Inspector returns the client's topology and health inspector.
func (c *Client) Inspector() *Inspector { return c.inspector }

// Dialer returns the mapping dialer.
func (c *Client) Dialer() *Dialer { return c.inspector.dialer }

// SetNodeAddressMap atomically replaces the node address map for new connections, retires
// pooled connections whose mapping changed, and refreshes the slot map in the background: a
// node that came back under a new announced address (a restarted pod's new IP) is used under
// that address at once, rather than after go-redis's own periodic refresh.
func (c *Client) SetNodeAddressMap(m NodeAddressMap) {
	c.inspector.dialer.SetMap(m)
	c.ReloadState(context.Background())
}

// SetNodeIDMap replaces the node ID fallback (see NodeIDMap) for new connections.
func (c *Client) SetNodeIDMap(m NodeIDMap) error {
	if err := ValidateNodeIDMap(m); err != nil {
		return err
	}
	c.inspector.dialer.SetNodeIDs(m)
	return nil
}

// SlotMaster returns the go-redis client of the master serving slot, for server commands
// (node-redis getSlotMaster).
func (c *Client) SlotMaster(ctx context.Context, slot int) (*redis.Client, error) {
	if slot < 0 || slot >= SlotCount {
		return nil, fmt.Errorf("slot %d out of range 0-%d", slot, SlotCount-1)
	}
	return c.MasterForKey(ctx, KeyForSlot(slot))
}

// Close closes the cluster client and the inspector.
func (c *Client) Close() error {
	return errors.Join(c.ClusterClient.Close(), c.inspector.Close())
}
