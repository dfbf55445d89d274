package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// clients are the --for choices, in the order help and errors list them.
var clients = []string{"node-redis", "ioredis", "go", "redis-py", "lettuce", "jedis"}

func newConfigCommand(a *App) *cobra.Command {
	var forClient string
	cmd := &cobra.Command{
		Use:   "config NAME --for CLIENT",
		Short: "Print a ready client snippet built from the rendered config.json",
		Long: `Prints a snippet for the client named by --for (` + strings.Join(clients, ", ") + `) with the
fields of the RedisConnection's rendered ConfigMap (config.json): root nodes, the node address
map, TLS and server name, timeouts, redirections, replicas. Credentials and certificates are
read at run time from the mounted Secret (RCONN_SECRET_DIR, default /etc/rconn/secret): the
snippet never contains them. The snippets follow docs/consuming.md.`,
		Example: "  kubectl rconn config cache --for node-redis\n  kubectl rconn config cache --for redis-py > app.py",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			gen, err := snippetFor(forClient)
			if err != nil {
				return err
			}
			c, err := a.connection(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, cfg, err := a.renderedConfig(cmd.Context(), c)
			if err != nil {
				return err
			}
			s, err := newSnippet(c, cfg)
			if err != nil {
				return err
			}
			s.forClient = forClient
			if cfg.ModeOrDefault() == client.ModeSentinel {
				if gen, err = sentinelSnippetFor(forClient); err != nil {
					return err
				}
			}
			var b strings.Builder
			gen(&b, s)
			_, err = io.WriteString(a.Out, b.String())
			return err
		},
	}
	cmd.Flags().StringVar(&forClient, "for", "", "client to write the snippet for: "+strings.Join(clients, "|"))
	_ = cmd.MarkFlagRequired("for")
	return cmd
}

func snippetFor(name string) (func(*strings.Builder, *snippet), error) {
	gens := map[string]func(*strings.Builder, *snippet){
		"node-redis": nodeRedisSnippet, "ioredis": ioredisSnippet, "go": goSnippet,
		"redis-py": redisPySnippet, "lettuce": lettuceSnippet, "jedis": jedisSnippet,
	}
	if g, ok := gens[name]; ok {
		return g, nil
	}
	return nil, fmt.Errorf("unknown --for %q: choose one of %s", name, strings.Join(clients, ", "))
}

// snippet is what every generator needs, taken from config.json.
type snippet struct {
	namespace, name, configMap, secret string
	// forClient is the --for value.
	forClient       string
	cfg             *client.Config
	standalone, tls bool
	roots           []cluster.Address
	// mapping is nodeAddressMap sorted by announced address.
	mapping []mapEntry
	// files are the Secret's file names for the secret material config.json says exists.
	username, password, ca, cert, key string
}

type mapEntry struct{ from, to cluster.Address }

func newSnippet(c *connection, cfg *client.Config) (*snippet, error) {
	s := &snippet{namespace: c.rc.Namespace, name: c.rc.Name, configMap: c.configMap, secret: c.secret, cfg: cfg,
		standalone: cfg.ModeOrDefault() == client.ModeStandalone, tls: cfg.Defaults.Socket.TLS}
	for _, rn := range cfg.RootNodes {
		u, err := cluster.ParseURL(rn.URL)
		if err != nil {
			return nil, fmt.Errorf("config.json root node: %w", err)
		}
		s.roots = append(s.roots, u.Address)
		s.tls = s.tls || u.TLS
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.NodeAddressMap)) {
		from, err := cluster.ParseAddress(k)
		if err != nil {
			return nil, fmt.Errorf("config.json nodeAddressMap key %q: %w", k, err)
		}
		v := cfg.NodeAddressMap[k]
		s.mapping = append(s.mapping, mapEntry{from, cluster.Address{Host: v.Host, Port: v.Port}})
	}
	f := cfg.Rconn.SecretFiles
	has := func(name, def string) string {
		if name == "" {
			name = def
		}
		if cfg.Rconn.SecretKeys == nil || slices.Contains(cfg.Rconn.SecretKeys, name) {
			return name
		}
		return ""
	}
	s.username, s.password = has(f.Username, client.SecretKeyUsername), has(f.Password, client.SecretKeyPassword)
	if s.tls {
		s.ca, s.cert, s.key = has(f.CA, client.SecretKeyCA), has(f.Cert, client.SecretKeyCert), has(f.Key, client.SecretKeyKey)
	}
	return s, nil
}

// rootFor is the address to connect to first: the first root node, mapped when the map has it
// (standalone clients have no map of their own).
func (s *snippet) rootFor() cluster.Address {
	if len(s.roots) == 0 {
		return cluster.Address{Host: "127.0.0.1", Port: 6379}
	}
	r := s.roots[0]
	for _, m := range s.mapping {
		if m.from == r {
			return m.to
		}
	}
	return r
}

func (s *snippet) header(w *strings.Builder, comment, client string) {
	forClient := s.forClient
	fmt.Fprintf(w, "%s %s for RedisConnection %s/%s, from ConfigMap %s (config.json).\n", comment, client, s.namespace, s.name, s.configMap)
	fmt.Fprintf(w, "%s Credentials and certificates are read from the Secret %s mounted at $RCONN_SECRET_DIR\n", comment, s.secret)
	fmt.Fprintf(w, "%s (default /etc/rconn/secret); re-run `kubectl rconn config %s --for %s` when the map changes.\n", comment, s.name, forClient)
}

func (s *snippet) maxRedirects() int {
	if s.cfg.MaxCommandRedirections > 0 {
		return s.cfg.MaxCommandRedirections
	}
	return cluster.DefaultMaxCommandRedirections
}

// q quotes a string for JavaScript, Python, Go and Java alike (JSON string syntax).
func q(s string) string { return fmt.Sprintf("%q", s) }
