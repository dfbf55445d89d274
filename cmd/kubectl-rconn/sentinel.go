package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// Sentinel mode (spec.mode Sentinel, config.json rconn.mode "sentinel") in check, status and
// config: the sentinels are asked for the master the way the controller and pkg/client ask
// (majority of the sentinels that answered + ROLE through the map), snippets follow
// docs/consuming.md ("Sentinel mode"), and clients without a Sentinel address map (redis-py,
// Jedis, Lettuce) go through rconn-proxy's sentinel listener.

// checkSentinel is check for a sentinel-mode config: discovery through the sentinels, then
// every data node and sentinel dialed through the map.
func (a *App) checkSentinel(ctx context.Context, r *client.Resolved, timeout time.Duration) error {
	o, err := r.SentinelInspectorOptions(a.Dial)
	if err != nil {
		return err
	}
	o.Defaults.ConnectTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxTimeout = timeout, timeout, timeout, timeout
	si, err := cluster.NewSentinelInspector(o)
	if err != nil {
		return err
	}
	defer func() { _ = si.Close() }()
	dctx, cancel := context.WithTimeout(ctx, timeout*time.Duration(len(o.Sentinel.RootNodes)+2))
	t, derr := si.Discover(dctx)
	cancel()
	if derr != nil {
		_, _ = fmt.Fprintf(a.Out, "discovery through the sentinels FAILED: %s\n", why(derr, timeout))
		return &ExitError{Code: 1}
	}
	master := "-"
	if t.Master != nil {
		master = t.Master.Announced
	}
	_, _ = fmt.Fprintf(a.Out, "master %q: %s (%s; %d of %d sentinels that answered agree), %d replicas, %d sentinels known\n",
		t.MasterName, master, t.Reason, t.Agreeing, t.Answered, len(t.Replicas), len(t.Sentinels))
	if t.MasterErr != nil {
		_, _ = fmt.Fprintf(a.Out, "master not confirmed: %s\n", why(t.MasterErr, timeout))
	}
	h := si.CheckHealth(ctx, t, timeout)
	data, sents := &cluster.Topology{Standalone: true}, &cluster.Topology{Standalone: true}
	if t.Master != nil {
		data.Nodes = append(data.Nodes, &cluster.Node{Announced: t.Master.Announced, Role: cluster.RoleMaster})
	}
	for _, n := range t.Replicas {
		data.Nodes = append(data.Nodes, &cluster.Node{Announced: n.Announced, Role: cluster.RoleReplica})
	}
	for _, s := range t.Sentinels {
		sents.Nodes = append(sents.Nodes, &cluster.Node{Announced: s.Announced, Role: cluster.RoleSentinel})
	}
	var b strings.Builder
	b.WriteString("data nodes:\n")
	failed := printChecks(&b, data, h.Data, timeout)
	b.WriteString("sentinels:\n")
	failed += printChecks(&b, sents, h.Sentinels, timeout)
	_, _ = io.WriteString(a.Out, b.String())
	total := len(data.Nodes) + len(sents.Nodes)
	if failed > 0 || !t.MasterConfirmed {
		_, _ = fmt.Fprintf(a.Out, "%d of %d nodes failed\n", failed, total)
		return &ExitError{Code: 1}
	}
	_, _ = fmt.Fprintf(a.Out, "all %d nodes OK (master confirmed)\n", total)
	return nil
}

// printSentinelConfig is status's Sentinel section, from config.json (what apps are told):
// the master name, the current master's URL, the sentinels.
func printSentinelConfig(out *strings.Builder, cfg *client.Config) {
	fmt.Fprintf(out, "\nSentinel (from config.json): master name %q\n", cfg.Name)
	fmt.Fprintf(out, "  current master (url): %s\n", dash(cluster.RedactURL(cfg.URL)))
	if cfg.UseReplicas {
		fmt.Fprintln(out, "  useReplicas: reads may go to replicas")
	}
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "  SENTINEL (REACHABLE)\tANNOUNCED")
	for i, n := range cfg.SentinelRootNodes {
		announced := ""
		if i < len(cfg.Rconn.Sentinels) && len(cfg.Rconn.Sentinels) == len(cfg.SentinelRootNodes) {
			announced = cfg.Rconn.Sentinels[i]
		}
		_, _ = fmt.Fprintf(tw, "  %s\t%s\n", n.String(), dash(announced))
	}
	_ = tw.Flush() // into a strings.Builder: cannot fail
	if len(cfg.Rconn.Sentinels) != len(cfg.SentinelRootNodes) && len(cfg.Rconn.Sentinels) > 0 {
		fmt.Fprintf(out, "  announced sentinels (rconn.sentinels): %s\n", strings.Join(cfg.Rconn.Sentinels, ", "))
	}
}

func sentinelSnippetFor(name string) (func(*strings.Builder, *snippet), error) {
	gens := map[string]func(*strings.Builder, *snippet){
		"node-redis": nodeRedisSentinelSnippet, "ioredis": ioredisSentinelSnippet, "go": goSnippet,
		"redis-py": redisPySentinelSnippet, "lettuce": lettuceSentinelSnippet, "jedis": jedisSentinelSnippet,
	}
	if g, ok := gens[name]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("unknown --for %q: choose one of %s", name, strings.Join(clients, ", "))
}

// jsConfigHelpers reads the mounted config.json and Secret files in Node.js (docs/consuming.md,
// Sentinel mode).
const jsConfigHelpers = `const CONFIG_DIR = process.env.RCONN_CONFIG_DIR ?? '/etc/rconn/config';
const SECRET_DIR = process.env.RCONN_SECRET_DIR ?? '/etc/rconn/secret';
const secret = (name) => {
  const p = join(SECRET_DIR, name);
  return existsSync(p) ? readFileSync(p) : undefined;
};
const text = (name) => secret(name)?.toString('utf8').replace(/[\r\n]+$/, '');
`

// nodeRedisSentinelSnippet is docs/consuming.md's createSentinel snippet (verified as is by
// pkg/client TestNodeRedisSentinelSnippet): config.json is read from its mount, so the
// snippet follows failovers and map changes without being printed again.
func nodeRedisSentinelSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "node-redis createSentinel (npm install redis, @redis/client >= 6.3)")
	fmt.Fprintf(w, `import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createSentinel } from 'redis';

%s
// Mount ConfigMap %s at $RCONN_CONFIG_DIR. url is the current master for clients without
// Sentinel support; useReplicas is rendered as replicaPoolSize for node-redis.
const { rconn = {}, url, useReplicas, ...options } =
  JSON.parse(readFileSync(join(CONFIG_DIR, 'config.json'), 'utf8'));
const withTLS = (socket, prefix) => (socket?.tls
  ? { ...socket, ca: secret(prefix + 'ca.crt'), cert: secret(prefix + 'tls.crt'), key: secret(prefix + 'tls.key') }
  : socket);

const redis = createSentinel({
  ...options, // name %s, sentinelRootNodes, nodeAddressMap (data nodes and sentinels), replicaPoolSize
  nodeClientOptions: {
    ...options.nodeClientOptions, socket: withTLS(options.nodeClientOptions?.socket, ''),
    username: text('username'), password: text('password'),
  },
  sentinelClientOptions: {
    ...options.sentinelClientOptions, socket: withTLS(options.sentinelClientOptions?.socket, 'sentinel-'),
    username: text('sentinel-username'), password: text('sentinel-password'),
  },
});
redis.on('error', (err) => console.error('redis error', err));
await redis.connect();
`, jsConfigHelpers, s.configMap, q(s.cfg.Name))
}

// ioredisSentinelSnippet is docs/consuming.md's ioredis Sentinel snippet (verified as is by
// pkg/client TestIORedisSentinelSnippet).
func ioredisSentinelSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "ioredis 5 Sentinel (npm install ioredis)")
	fmt.Fprintf(w, `import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import Redis from 'ioredis';

%s
// Mount ConfigMap %s at $RCONN_CONFIG_DIR.
const cfg = JSON.parse(readFileSync(join(CONFIG_DIR, 'config.json'), 'utf8'));
const node = cfg.nodeClientOptions ?? {};
const sent = cfg.sentinelClientOptions ?? {};
const tlsOf = (socket, prefix) => (socket?.tls
  ? { ca: secret(prefix + 'ca.crt'), cert: secret(prefix + 'tls.crt'), key: secret(prefix + 'tls.key'), servername: socket.servername }
  : undefined);

const redis = new Redis({
  name: cfg.name, // %s
  sentinels: cfg.sentinelRootNodes,
  natMap: cfg.nodeAddressMap, // the same {"host:port": {host, port}} shape
  role: cfg.useReplicas ? 'slave' : 'master',
  db: node.database ?? 0,
  connectionName: node.name,
  connectTimeout: node.socket?.connectTimeout,
  username: text('username'),
  password: text('password'),
  tls: tlsOf(node.socket, ''),
  sentinelUsername: text('sentinel-username'),
  sentinelPassword: text('sentinel-password'),
  enableTLSForSentinelMode: Boolean(sent.socket?.tls),
  sentinelTLS: tlsOf(sent.socket, 'sentinel-'),
});
`, jsConfigHelpers, s.configMap, q(s.cfg.Name))
}

// proxyNote tells how to run rconn-proxy in Sentinel mode for clients that cannot remap what
// the sentinels announce.
func (s *snippet) proxyNote(w *strings.Builder, comment string) {
	fmt.Fprintf(w, "%s This client cannot remap what the sentinels announce: run rconn-proxy beside it (a sidecar,\n", comment)
	fmt.Fprintf(w, "%s or `kubectl rconn port-forward %s` on a laptop). Its sentinel listener names only the proxy's\n", comment, s.name)
	fmt.Fprintf(w, "%s listeners and follows every failover:\n", comment)
	fmt.Fprintf(w, "%s   rconn-proxy --seed-port 26379 --master-port 6379 --kube %s/%s\n", comment, s.namespace, s.name)
	fmt.Fprintf(w, "%s Without Sentinel support at all: connect to 127.0.0.1:6379 (--master-port, the current master).\n", comment)
}

func redisPySentinelSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "#", "redis-py Sentinel (pip install redis; Debian python3-redis 4.3.4 works)")
	s.proxyNote(w, "#")
	fmt.Fprintf(w, `import os

from redis.sentinel import Sentinel

SECRET_DIR = os.environ.get("RCONN_SECRET_DIR", "/etc/rconn/secret")


def secret(name):
    p = os.path.join(SECRET_DIR, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read().rstrip("\r\n")


sentinel = Sentinel([("127.0.0.1", 26379)], socket_timeout=1.0)
master = sentinel.master_for(
    %s,
    username=%s,
    password=%s,
    db=%d,
    socket_timeout=1.0,
)
master.ping()
`, q(s.cfg.Name), pySecret(s.username), pySecret(s.password), s.cfg.NodeClientOptions.Database)
	if s.cfg.UseReplicas {
		fmt.Fprintf(w, "replica = sentinel.slave_for(%s, username=%s, password=%s, socket_timeout=1.0)  # reads\n", q(s.cfg.Name), pySecret(s.username), pySecret(s.password))
	}
}

func jedisSentinelSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "Jedis 5 JedisSentinelPool (redis.clients:jedis)")
	s.proxyNote(w, "//")
	fmt.Fprint(w, `import redis.clients.jedis.*;
import java.io.IOException;
import java.nio.file.*;
import java.util.*;

public class RconnJedisSentinel {
`)
	fmt.Fprint(w, javaSecretHelper)
	fmt.Fprintln(w, "\n    public static void main(String[] args) throws IOException {")
	fmt.Fprintln(w, "        JedisClientConfig master = DefaultJedisClientConfig.builder()")
	if s.username != "" {
		fmt.Fprintf(w, "            .user(secret(%s))\n", q(s.username))
	}
	if s.password != "" {
		fmt.Fprintf(w, "            .password(secret(%s))\n", q(s.password))
	}
	fmt.Fprintf(w, "            .database(%d).build();\n", s.cfg.NodeClientOptions.Database)
	fmt.Fprintln(w, "        JedisClientConfig sentinel = DefaultJedisClientConfig.builder().build(); // rconn-proxy's sentinel listener")
	fmt.Fprintf(w, "        try (JedisSentinelPool pool = new JedisSentinelPool(%s, Set.of(new HostAndPort(\"127.0.0.1\", 26379)), master, sentinel);\n", q(s.cfg.Name))
	fmt.Fprintln(w, "             Jedis jedis = pool.getResource()) {\n            jedis.set(\"key\", \"value\");\n        }\n    }\n}")
}

func lettuceSentinelSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "Lettuce 6 Sentinel (io.lettuce:lettuce-core)")
	s.proxyNote(w, "//")
	fmt.Fprint(w, `import io.lettuce.core.*;
import io.lettuce.core.api.StatefulRedisConnection;
import java.io.IOException;
import java.nio.file.*;

public class RconnLettuceSentinel {
`)
	fmt.Fprint(w, javaSecretHelper)
	fmt.Fprintln(w, "\n    public static void main(String[] args) throws IOException {")
	fmt.Fprintf(w, "        RedisURI.Builder uri = RedisURI.Builder.sentinel(\"127.0.0.1\", 26379, %s).withDatabase(%d);\n", q(s.cfg.Name), s.cfg.NodeClientOptions.Database)
	switch {
	case s.username != "" && s.password != "":
		fmt.Fprintf(w, "        uri.withAuthentication(secret(%s), secret(%s).toCharArray());\n", q(s.username), q(s.password))
	case s.password != "":
		fmt.Fprintf(w, "        uri.withPassword(secret(%s).toCharArray());\n", q(s.password))
	}
	fmt.Fprintln(w, "        RedisClient client = RedisClient.create(uri.build());")
	fmt.Fprintln(w, "        try (StatefulRedisConnection<String, String> conn = client.connect()) {\n            conn.sync().set(\"key\", \"value\");\n        }\n        client.shutdown();\n    }\n}")
}
