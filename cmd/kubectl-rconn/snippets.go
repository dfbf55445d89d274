package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// jsSecretHelpers reads Secret files in Node.js (docs/consuming.md, Node.js).
const jsSecretHelpers = `const SECRET_DIR = process.env.RCONN_SECRET_DIR ?? '/etc/rconn/secret';
// A Secret file, or undefined when the Secret has no such key.
const secret = (name) => {
  const p = join(SECRET_DIR, name);
  return existsSync(p) ? readFileSync(p) : undefined;
};
const text = (name) => secret(name)?.toString('utf8').replace(/[\r\n]+$/, '');
`

// jsReconnect is node-redis's reconnectStrategy for config.json's rconn.reconnectStrategy.
func jsReconnect(rs *client.ReconnectConfig) string {
	base, limit, jitter := int64(50), int64(2000), int64(200)
	if rs != nil {
		switch rs.Type {
		case client.ReconnectTypeNone:
			return "false"
		case client.ReconnectTypeFixedDelay:
			return fmt.Sprintf("() => %d", rs.DelayMs)
		}
		if rs.BaseMs > 0 {
			base = rs.BaseMs
		}
		if rs.CapMs > 0 {
			limit = rs.CapMs
		}
		jitter = rs.JitterMs
	}
	return fmt.Sprintf("(retries) => Math.min(2 ** retries * %d, %d) + Math.floor(Math.random() * %d)", base, limit, jitter)
}

func nodeRedisSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "node-redis (npm install redis)")
	opts := *s.cfg
	opts.Rconn = client.RconnConfig{}
	b, _ := json.MarshalIndent(&opts, "", "  ")
	fmt.Fprintf(w, `import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, createCluster } from 'redis';

%s
// config.json without its "rconn" section.
const options = %s;

const socket = {
  ...options.defaults?.socket,
  reconnectStrategy: %s,
`, jsSecretHelpers, b, jsReconnect(s.cfg.Rconn.ReconnectStrategy))
	if s.tls {
		fmt.Fprintf(w, "  ca: %s, cert: %s, key: %s,\n", jsSecret(s.ca), jsSecret(s.cert), jsSecret(s.key))
		if s.cfg.Rconn.TLSInsecureSkipVerify {
			fmt.Fprintln(w, "  rejectUnauthorized: false, // rconn.tlsInsecureSkipVerify")
		}
	}
	fmt.Fprintf(w, "};\nconst defaults = { ...options.defaults, username: %s, password: %s, socket };\n\n", jsText(s.username), jsText(s.password))
	if s.standalone {
		fmt.Fprintln(w, "const { url, defaults: _, rootNodes: __, ...rest } = options;")
		fmt.Fprintln(w, "const redis = createClient({ ...rest, url, ...defaults });")
	} else {
		fmt.Fprintln(w, "const redis = createCluster({ ...options, defaults });")
	}
	fmt.Fprintln(w, "redis.on('error', (err) => console.error('redis error', err));\nawait redis.connect();")
}

func jsSecret(name string) string {
	if name == "" {
		return "undefined"
	}
	return "secret(" + q(name) + ")"
}

func jsText(name string) string {
	if name == "" {
		return "undefined"
	}
	return "text(" + q(name) + ")"
}

func ioredisSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "ioredis (npm install ioredis)")
	fmt.Fprintf(w, "import { readFileSync, existsSync } from 'node:fs';\nimport { join } from 'node:path';\nimport Redis from 'ioredis';\n\n%s\n", jsSecretHelpers)
	var tls string
	if s.tls {
		parts := []string{"ca: " + jsSecret(s.ca), "cert: " + jsSecret(s.cert), "key: " + jsSecret(s.key)}
		if sn := s.cfg.Defaults.Socket.ServerName; sn != "" {
			parts = append(parts, "servername: "+q(sn))
		}
		if s.cfg.Rconn.TLSInsecureSkipVerify {
			parts = append(parts, "rejectUnauthorized: false")
		}
		tls = "\n  tls: { " + strings.Join(parts, ", ") + " },"
	}
	opts := fmt.Sprintf("  username: %s,\n  password: %s,%s", jsText(s.username), jsText(s.password), tls)
	if ms := s.cfg.Defaults.Socket.ConnectTimeout; ms > 0 {
		opts += fmt.Sprintf("\n  connectTimeout: %d,", ms)
	}
	if n := s.cfg.Defaults.Name; n != "" {
		opts += "\n  connectionName: " + q(n) + ","
	}
	if s.standalone {
		r := s.rootFor()
		fmt.Fprintf(w, "const redis = new Redis({\n  host: %s,\n  port: %d,\n  db: %d,\n%s\n});\n", q(r.Host), r.Port, s.cfg.Defaults.Database, opts)
	} else {
		fmt.Fprintln(w, "// config.json's nodeAddressMap, as ioredis's natMap takes it.")
		fmt.Fprintln(w, "const natMap = {")
		for _, m := range s.mapping {
			fmt.Fprintf(w, "  %s: { host: %s, port: %d },\n", q(m.from.Host+":"+fmt.Sprint(m.from.Port)), q(m.to.Host), m.to.Port)
		}
		fmt.Fprintln(w, "};")
		fmt.Fprint(w, "const redis = new Redis.Cluster([")
		for i, r := range s.roots {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprintf(w, "{ host: %s, port: %d }", q(r.Host), r.Port)
		}
		fmt.Fprintf(w, "], {\n  natMap,\n  maxRedirections: %d,\n", s.maxRedirects())
		if s.cfg.UseReplicas {
			fmt.Fprintln(w, "  scaleReads: 'all',")
		}
		if s.cfg.MinimizeConnections {
			fmt.Fprintln(w, "  lazyConnect: true,")
		}
		fmt.Fprintf(w, "  redisOptions: {\n%s\n  },\n});\n", indent(opts, "  "))
	}
	fmt.Fprintln(w, "redis.on('error', (err) => console.error('redis error', err));")
}

func indent(s, by string) string {
	return by + strings.ReplaceAll(s, "\n", "\n"+by)
}

func goSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "Go (go get github.com/rconn-dev/redis-connection-operator)")
	fmt.Fprintf(w, `// In a pod: mount the ConfigMap and the Secret (docs/consuming.md) and use client.Open. From
// anywhere with API access (get+watch on both objects), use kubesource.Open as below. Both read
// the node address map, TLS and credentials from the rendered outputs and follow them live.
package main

import (
	"context"
	"log"
	"time"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/client/kubesource"
)

func main() {
	ctx := context.Background()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// In a pod: c, err := client.Open(openCtx, "/etc/rconn/config", "/etc/rconn/secret")
	c, err := kubesource.Open(openCtx, kubesource.Options{
		Namespace: %s,
		Name:      %s,
		ConfigMap: %s,
		Secret:    %s,
	}, client.OpenOptions{
		OnEvent: func(e client.Event) { log.Printf("redis %%s: %%v", e.Type, e.Err) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, "key", "value", 0).Err(); err != nil {
		log.Fatal(err)
	}
}
`, q(s.namespace), q(s.name), q(s.configMap), q(s.secret))
}

func pySecret(name string) string {
	if name == "" {
		return "None"
	}
	return "secret(" + q(name) + ")"
}

func pyPath(name string) string {
	if name == "" {
		return "None"
	}
	return "secret_path(" + q(name) + ")"
}

func redisPySnippet(w *strings.Builder, s *snippet) {
	s.header(w, "#", "redis-py >= 5 (pip install 'redis>=5')")
	fmt.Fprintln(w, "# redis-py < 5 (Debian's python3-redis 4.3.4) has no address_remap: run `kubectl rconn port-forward`")
	fmt.Fprintln(w, "# or rconn-proxy and connect to its seed port instead.")
	fmt.Fprint(w, `import os

SECRET_DIR = os.environ.get("RCONN_SECRET_DIR", "/etc/rconn/secret")


def secret_path(name):
    p = os.path.join(SECRET_DIR, name)
    return p if os.path.exists(p) else None


def secret(name):
    p = secret_path(name)
    if p is None:
        return None
    with open(p) as f:
        return f.read().rstrip("\r\n")


`)
	kw := []string{fmt.Sprintf("username=%s", pySecret(s.username)), fmt.Sprintf("password=%s", pySecret(s.password))}
	if s.tls {
		kw = append(kw, "ssl=True", "ssl_ca_certs="+pyPath(s.ca), "ssl_certfile="+pyPath(s.cert), "ssl_keyfile="+pyPath(s.key))
		if s.cfg.Rconn.TLSInsecureSkipVerify {
			kw = append(kw, `ssl_cert_reqs="none"`)
		}
	}
	if ms := s.cfg.Defaults.Socket.ConnectTimeout; ms > 0 {
		kw = append(kw, fmt.Sprintf("socket_connect_timeout=%g", float64(ms)/1000))
	}
	if n := s.cfg.Defaults.Name; n != "" {
		kw = append(kw, "client_name="+q(n))
	}
	if s.standalone {
		r := s.rootFor()
		fmt.Fprintf(w, "from redis import Redis\n\nr = Redis(\n    host=%s,\n    port=%d,\n    db=%d,\n", q(r.Host), r.Port, s.cfg.Defaults.Database)
	} else {
		fmt.Fprintln(w, "from redis.cluster import RedisCluster\n\n# config.json's nodeAddressMap: announced (host, port) -> reachable (host, port).")
		fmt.Fprintln(w, "NODE_ADDRESS_MAP = {")
		for _, m := range s.mapping {
			fmt.Fprintf(w, "    (%s, %d): (%s, %d),\n", q(m.from.Host), m.from.Port, q(m.to.Host), m.to.Port)
		}
		fmt.Fprint(w, "}\n\n\ndef remap(addr):\n    return NODE_ADDRESS_MAP.get((addr[0], int(addr[1])), addr)\n\n\n")
		r := s.rootFor()
		fmt.Fprintf(w, "r = RedisCluster(\n    host=%s,\n    port=%d,\n    address_remap=remap,\n", q(r.Host), r.Port)
		if s.cfg.UseReplicas {
			kw = append(kw, "read_from_replicas=True")
		}
	}
	for _, k := range kw {
		fmt.Fprintf(w, "    %s,\n", k)
	}
	fmt.Fprintln(w, ")\nr.ping()")
}

// javaEntries is nodeAddressMap as Map.entry lines built with newHP ("HostAndPort.of" or
// "new HostAndPort").
func javaEntries(w *strings.Builder, s *snippet, newHP string) {
	fmt.Fprintln(w, "        // config.json's nodeAddressMap: announced -> reachable.")
	fmt.Fprint(w, "        Map<HostAndPort, HostAndPort> map = Map.ofEntries(")
	for i, m := range s.mapping {
		sep := ","
		if i == len(s.mapping)-1 {
			sep = ""
		}
		fmt.Fprintf(w, "\n            Map.entry(%s(%s, %d), %s(%s, %d))%s", newHP, q(m.from.Host), m.from.Port, newHP, q(m.to.Host), m.to.Port, sep)
	}
	fmt.Fprintln(w, ");")
}

const javaSecretHelper = `    static String secret(String name) throws IOException {
        Path p = Path.of(System.getenv().getOrDefault("RCONN_SECRET_DIR", "/etc/rconn/secret"), name);
        return Files.exists(p) ? Files.readString(p).strip() : null;
    }
`

func lettuceSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "Lettuce 6 (io.lettuce:lettuce-core)")
	fmt.Fprintln(w, "// TLS material: build SslOptions from the Secret's ca.crt / tls.crt / tls.key (SslOptions.builder().trustManager(...)).")
	fmt.Fprint(w, `import io.lettuce.core.*;
import io.lettuce.core.cluster.*;
import io.lettuce.core.cluster.api.StatefulRedisClusterConnection;
import io.lettuce.core.internal.HostAndPort;
import io.lettuce.core.resource.*;
import java.io.IOException;
import java.nio.file.*;
import java.time.Duration;
import java.util.*;

public class RconnLettuce {
`)
	fmt.Fprint(w, javaSecretHelper)
	fmt.Fprintln(w, "\n    public static void main(String[] args) throws IOException {")
	if !s.standalone {
		javaEntries(w, s, "HostAndPort.of")
		fmt.Fprintln(w, "        ClientResources res = ClientResources.builder()\n            .socketAddressResolver(MappingSocketAddressResolver.create(DnsResolvers.UNRESOLVED,\n                hp -> map.getOrDefault(hp, hp)))\n            .build();")
	}
	roots := s.roots
	if s.standalone {
		roots = roots[:0:0]
		roots = append(roots, s.rootFor())
	}
	fmt.Fprintln(w, "        List<RedisURI> seeds = new ArrayList<>();")
	for _, r := range roots {
		fmt.Fprintf(w, "        seeds.add(uri(%s, %d));\n", q(r.Host), r.Port)
	}
	if s.standalone {
		fmt.Fprintln(w, "        RedisClient client = RedisClient.create(seeds.get(0));\n        var conn = client.connect();")
	} else {
		fmt.Fprintln(w, "        RedisClusterClient client = RedisClusterClient.create(res, seeds);")
		fmt.Fprintf(w, "        client.setOptions(ClusterClientOptions.builder().maxRedirects(%d).build());\n", s.maxRedirects())
		fmt.Fprintln(w, "        StatefulRedisClusterConnection<String, String> conn = client.connect();")
		if s.cfg.UseReplicas {
			fmt.Fprintln(w, "        conn.setReadFrom(ReadFrom.ANY);")
		}
	}
	fmt.Fprint(w, "        conn.sync().ping();\n    }\n\n")
	fmt.Fprintln(w, "    static RedisURI uri(String host, int port) throws IOException {\n        RedisURI.Builder b = RedisURI.builder().withHost(host).withPort(port);")
	if s.password != "" {
		user := "null"
		if s.username != "" {
			user = "secret(" + q(s.username) + ")"
		}
		fmt.Fprintf(w, "        String user = %s, password = secret(%s);\n", user, q(s.password))
		fmt.Fprintln(w, "        if (password != null) b = user != null ? b.withAuthentication(user, password) : b.withPassword(password.toCharArray());")
	}
	if s.tls {
		fmt.Fprintf(w, "        b = b.withSsl(true).withVerifyPeer(%t);\n", !s.cfg.Rconn.TLSInsecureSkipVerify)
	}
	if ms := s.cfg.Defaults.Socket.ConnectTimeout; ms > 0 {
		fmt.Fprintf(w, "        b = b.withTimeout(Duration.ofMillis(%d));\n", ms)
	}
	if s.standalone && s.cfg.Defaults.Database != 0 {
		fmt.Fprintf(w, "        b = b.withDatabase(%d);\n", s.cfg.Defaults.Database)
	}
	if n := s.cfg.Defaults.Name; n != "" {
		fmt.Fprintf(w, "        b = b.withClientName(%s);\n", q(n))
	}
	fmt.Fprintln(w, "        return b.build();\n    }\n}")
}

func jedisSnippet(w *strings.Builder, s *snippet) {
	s.header(w, "//", "Jedis 5 (redis.clients:jedis)")
	fmt.Fprintln(w, "// TLS material: pass an SSLSocketFactory built from the Secret's ca.crt / tls.crt / tls.key (.sslSocketFactory(...)).")
	fmt.Fprint(w, `import redis.clients.jedis.*;
import java.io.IOException;
import java.nio.file.*;
import java.util.*;
import org.apache.commons.pool2.impl.GenericObjectPoolConfig;

public class RconnJedis {
`)
	fmt.Fprint(w, javaSecretHelper)
	fmt.Fprintln(w, "\n    public static void main(String[] args) throws IOException {")
	if !s.standalone {
		javaEntries(w, s, "new HostAndPort")
	}
	fmt.Fprintln(w, "        DefaultJedisClientConfig.Builder cfg = DefaultJedisClientConfig.builder()")
	if s.username != "" {
		fmt.Fprintf(w, "            .user(secret(%s))\n", q(s.username))
	}
	if s.password != "" {
		fmt.Fprintf(w, "            .password(secret(%s))\n", q(s.password))
	}
	if s.tls {
		fmt.Fprintln(w, "            .ssl(true)")
	}
	if ms := s.cfg.Defaults.Socket.ConnectTimeout; ms > 0 {
		fmt.Fprintf(w, "            .connectionTimeoutMillis(%d)\n", ms)
	}
	if n := s.cfg.Defaults.Name; n != "" {
		fmt.Fprintf(w, "            .clientName(%s)\n", q(n))
	}
	if s.standalone {
		if s.cfg.Defaults.Database != 0 {
			fmt.Fprintf(w, "            .database(%d)\n", s.cfg.Defaults.Database)
		}
		r := s.rootFor()
		fmt.Fprintf(w, "            ;\n        try (Jedis jedis = new Jedis(new HostAndPort(%s, %d), cfg.build())) {\n            jedis.ping();\n        }\n    }\n}\n", q(r.Host), r.Port)
		return
	}
	fmt.Fprintln(w, "            .hostAndPortMapper(hp -> map.getOrDefault(hp, hp));")
	fmt.Fprintln(w, "        Set<HostAndPort> seeds = new HashSet<>();")
	for _, r := range s.roots {
		fmt.Fprintf(w, "        seeds.add(new HostAndPort(%s, %d));\n", q(r.Host), r.Port)
	}
	fmt.Fprintf(w, "        try (JedisCluster jc = new JedisCluster(seeds, cfg.build(), %d, new GenericObjectPoolConfig<>())) {\n            jc.set(\"key\", \"value\");\n        }\n    }\n}\n", s.maxRedirects())
}
