package client

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Script is a Lua script an app calls by name (node-redis createClient/createCluster
// "scripts": SCRIPT and IS_READ_ONLY; the keys are Run's keys argument, so NUMBER_OF_KEYS is
// len(keys)).
type Script struct {
	// Source is the Lua code (node-redis SCRIPT).
	Source string
	// ReadOnly runs it with EVALSHA_RO/EVAL_RO (node-redis IS_READ_ONLY), which replicas accept.
	ReadOnly bool
}

// ErrUnknownScript is returned by Run for a name the options declare no script for.
var ErrUnknownScript = errors.New("rconn: no script of this name")

// scripts holds the declared scripts with their SHA1s (go-redis Script).
type scripts map[string]struct {
	s  *redis.Script
	ro bool
}

func newScripts(m map[string]Script) scripts {
	if len(m) == 0 {
		return nil
	}
	out := make(scripts, len(m))
	for name, s := range m {
		out[name] = struct {
			s  *redis.Script
			ro bool
		}{redis.NewScript(s.Source), s.ReadOnly}
	}
	return out
}

// Run calls the script declared under name (Options.Scripts, ClusterOptions.Scripts) with
// EVALSHA and, when the server does not have it cached (NOSCRIPT: a restarted or new node,
// SCRIPT FLUSH), EVAL, which caches it again: go-redis's Script.Run. In cluster mode the call
// is routed by its first key, like any keyed command (node-redis does the same); a script
// called without keys goes to a random master. Keys of one call must share a hash slot.
func (c *Client) Run(ctx context.Context, name string, keys []string, args ...any) *redis.Cmd {
	sc, ok := c.scripts[name]
	if !ok {
		cmd := redis.NewCmd(ctx, "evalsha", name)
		cmd.SetErr(fmt.Errorf("%w: %q", ErrUnknownScript, name))
		return cmd
	}
	if sc.ro {
		return sc.s.RunRO(ctx, c, keys, args...)
	}
	return sc.s.Run(ctx, c, keys, args...)
}

// loadFunctions loads every declared function library with FUNCTION LOAD REPLACE on every
// master (cluster mode) or on the server, so FCALL/FCALL_RO (go-redis FCall, FCallRO) find
// them: a Redis function lives on each node, replicas get it by replication, and a node that
// restarted without persistence has lost it. It runs at connect and after every reconnect.
func (c *Client) loadFunctions(ctx context.Context) error {
	if len(c.functions) == 0 {
		return nil
	}
	names := make([]string, 0, len(c.functions))
	for n := range c.functions {
		names = append(names, n)
	}
	sort.Strings(names)
	load := func(ctx context.Context, n *redis.Client) error {
		for _, lib := range names {
			if err := n.FunctionLoadReplace(ctx, c.functions[lib]).Err(); err != nil {
				return fmt.Errorf("rconn: FUNCTION LOAD REPLACE of library %q on %s: %w", lib, n.Options().Addr, err)
			}
		}
		return nil
	}
	if c.cluster != nil {
		return c.cluster.ForEachMaster(ctx, load)
	}
	return load(ctx, c.single)
}

// withFunctions wraps the connection probe: after a successful probe that follows a failed one
// (or the first), the function libraries are loaded; a failed load fails the probe, so the
// client is not ready without them and retries per the reconnect strategy.
func (c *Client) withFunctions(probe func(context.Context) error) func(context.Context) error {
	if len(c.functions) == 0 {
		return probe
	}
	loaded := false
	return func(ctx context.Context) error {
		if err := probe(ctx); err != nil {
			loaded = false
			return err
		}
		if loaded {
			return nil
		}
		if err := c.loadFunctions(ctx); err != nil {
			return err
		}
		loaded = true
		return nil
	}
}

// FCall is go-redis's FCall (FCALL, routed by the first key in cluster mode) that, when a node
// answers that the function does not exist (a node restarted without persistence, a new master,
// FUNCTION FLUSH) and the options declare function libraries, loads them again on every master
// and retries once.
func (c *Client) FCall(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd {
	cmd := c.UniversalClient.FCall(ctx, function, keys, args...)
	if c.reloadFunctions(ctx, cmd.Err()) {
		cmd = c.UniversalClient.FCall(ctx, function, keys, args...)
	}
	return cmd
}

// FCallRO is FCall with FCALL_RO.
func (c *Client) FCallRO(ctx context.Context, function string, keys []string, args ...any) *redis.Cmd {
	cmd := c.UniversalClient.FCallRO(ctx, function, keys, args...)
	if c.reloadFunctions(ctx, cmd.Err()) {
		cmd = c.UniversalClient.FCallRO(ctx, function, keys, args...)
	}
	return cmd
}

// reloadFunctions reports whether err says the function is missing and the libraries were
// loaded again. Redis has no error code for it ("ERR Function not found"): the text is all
// there is, and go-redis offers no predicate.
func (c *Client) reloadFunctions(ctx context.Context, err error) bool {
	var re redis.Error
	if len(c.functions) == 0 || !errors.As(err, &re) || !strings.Contains(re.Error(), "Function not found") {
		return false
	}
	return c.loadFunctions(ctx) == nil
}
