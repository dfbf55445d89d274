package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

func newCheckCommand(a *App) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check NAME",
		Short: "Dial every node through the node address map from here and say which fail and why",
		Long: `Reads the RedisConnection's rendered config.json (and its Secret, when you may read it: ACL
credentials and TLS material; never printed), discovers the topology through the root nodes the
way pkg/client does, then dials every node through the node address map from this machine:
TCP connect, TLS handshake with the per-node server name, AUTH, PING, ROLE and CLUSTER INFO.
Prints one line per node (OK, or FAIL and why: timed out, refused, TLS, authentication, ...)
and exits 1 when any node fails. When discovery fails, the nodes the controller reported in
status are checked instead, those whose announced address config.json maps (or names as a
root node); the others are listed as SKIP and not dialed. Every dial and command is bounded
by --timeout. In Sentinel mode the sentinels are asked for the master (majority + ROLE, as the
controller asks), then every data node and sentinel is checked with its own credentials and TLS.

config.json is checked against its Secret the way apps check it (the Secret's config.sha256):
one the Secret does not bind is refused and nothing is dialed. Without read access to the
Secret, config.json cannot be verified, and check runs without any credentials or client
certificate.`,
		Example: "  kubectl rconn check cache\n  kubectl rconn check cache --timeout 5s",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.check(cmd.Context(), args[0], timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "bound for discovery and for each node's check")
	return cmd
}

func (a *App) check(ctx context.Context, name string, timeout time.Duration) error {
	if timeout <= 0 {
		return errors.New("--timeout must be positive")
	}
	c, err := a.connection(ctx, name)
	if err != nil {
		return err
	}
	raw, _, err := a.renderedConfig(ctx, c)
	if err != nil {
		return err
	}
	secret, note, err := a.secretData(ctx, c)
	if err != nil {
		return err
	}
	if note != "" {
		_, _ = fmt.Fprintln(a.Err, "note:", note)
	}
	r, err := checkedConfig(ctx, raw, secret)
	if err != nil {
		return err
	}
	if secret == nil {
		_, _ = fmt.Fprintln(a.Err, "note: without the Secret, config.json cannot be verified against it: checking without credentials or client certificate")
	}
	if r.Config.ModeOrDefault() == client.ModeSentinel {
		return a.checkSentinel(ctx, r, timeout)
	}
	o, err := r.InspectorOptions(a.Dial)
	if err != nil {
		return err
	}
	o.Defaults.ConnectTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxTimeout = timeout, timeout, timeout, timeout
	in, err := cluster.NewInspector(o)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	in.Dialer().SetNodeIDs(o.NodeIDMap)

	dctx, cancel := context.WithTimeout(ctx, timeout*time.Duration(len(o.RootNodes)+1))
	topo, derr := in.Discover(dctx)
	cancel()
	if derr != nil {
		_, _ = fmt.Fprintf(a.Out, "discovery through the root nodes FAILED: %s\n", why(derr, timeout))
		var skipped []string
		topo, skipped = statusNodes(c.rc, r.Config)
		for _, s := range skipped {
			_, _ = fmt.Fprintf(a.Out, "SKIP %s: in the RedisConnection's status but not in config.json's node address map or root nodes: not dialed (status is not bound to the Secret)\n", s)
		}
		if len(topo.Nodes) == 0 {
			return &ExitError{Code: 1}
		}
		_, _ = fmt.Fprintf(a.Out, "checking the %d nodes of the RedisConnection's status instead\n", len(topo.Nodes))
	} else {
		_, _ = fmt.Fprintf(a.Out, "discovered %d nodes in %d shards via %s (%s)\n", len(topo.Nodes), len(topo.Shards), topo.Source, topo.Command)
	}
	var b strings.Builder
	failed := printChecks(&b, topo, in.CheckHealth(ctx, topo, timeout), timeout)
	_, _ = io.WriteString(a.Out, b.String())
	if failed > 0 || derr != nil {
		_, _ = fmt.Fprintf(a.Out, "%d of %d nodes failed\n", failed, len(topo.Nodes))
		return &ExitError{Code: 1}
	}
	_, _ = fmt.Fprintf(a.Out, "all %d nodes OK\n", len(topo.Nodes))
	return nil
}

// checkedConfig is what check acts on: config.json verified against its Secret by pkg/client's
// rules when the Secret could be read (a config.json the Secret does not bind is refused before
// anything is dialed: its addresses could send the credentials anywhere), else config.json
// alone, without any secret material (client.ResolveWithoutSecret).
func checkedConfig(ctx context.Context, raw []byte, secret map[string][]byte) (*client.Resolved, error) {
	if secret == nil {
		return client.ResolveWithoutSecret(raw)
	}
	r, err := resolve(ctx, raw, secret)
	if errors.Is(err, client.ErrConfigNotBound) {
		return nil, fmt.Errorf("refusing to check, nothing was dialed: %w", err)
	}
	return r, err
}

// statusNodes are the nodes of the RedisConnection's status whose announced address config.json
// names (a key of its node address map, or a root node), so that check dials them where
// config.json says; skipped lists the others. Status is not part of the pair the Secret binds:
// an address only status names is never dialed (a node ID alone does not do: the dialer's
// fallback by ID asks the cluster, and dials as announced when that fails).
func statusNodes(rc *rconnv1.RedisConnection, cfg *client.Config) (topo *cluster.Topology, skipped []string) {
	known := map[string]bool{}
	for k := range cfg.NodeAddressMap {
		known[k] = true
	}
	for _, rn := range cfg.RootNodes {
		if u, err := cluster.ParseURL(rn.URL); err == nil {
			known[u.Address.String()] = true
		}
	}
	topo = &cluster.Topology{Standalone: cfg.ModeOrDefault() == client.ModeStandalone}
	for _, n := range rc.Status.Nodes {
		if !known[n.Announced] {
			skipped = append(skipped, n.Announced)
			continue
		}
		topo.Nodes = append(topo.Nodes, &cluster.Node{ID: n.ID, Announced: n.Announced, Role: cluster.Role(n.Role)})
	}
	return topo, skipped
}

func printChecks(out *strings.Builder, topo *cluster.Topology, hs []cluster.NodeHealth, timeout time.Duration) int {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "RESULT\tROLE\tANNOUNCED\tDIALED\tDETAIL")
	failed := 0
	for i, h := range hs {
		n := topo.Nodes[i]
		role := string(h.Role)
		if role == "" {
			role = string(n.Role)
		}
		res, detail := "OK", fmt.Sprintf("PING %s", h.Latency.Round(10*time.Microsecond))
		if !h.Healthy() {
			failed++
			res, detail = "FAIL", why(h.Err, timeout)
			if h.Err == nil {
				detail = "cluster_state:" + h.ClusterState
			}
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", res, dash(role), h.Announced, dash(h.Dialed), detail)
	}
	_ = tw.Flush() // into a strings.Builder: cannot fail
	return failed
}

// why says in a few words why a dial or check failed. Unlike the controller's status (which
// must not tell a closed port from a filtered one), this runs as the user, from the user's
// machine: the precise local cause is what helps.
func why(err error, timeout time.Duration) string {
	var (
		dnsErr  *net.DNSError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		inval   x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		netErr  net.Error
	)
	class, _ := cluster.Classify(err)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s (DNS)", dnsErr.Name)
	case errors.Is(err, cluster.ErrNameResolutionDisabled):
		return "no map entry, and the announced name is not resolved"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens there)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &unknown):
		return "TLS: server certificate signed by an unknown authority (ca.crt)"
	case errors.As(err, &host):
		return fmt.Sprintf("TLS: server certificate is not valid for %q (mapped host or servername)", host.Host)
	case errors.As(err, &inval):
		return "TLS: server certificate invalid (" + inval.Error() + ")"
	case errors.As(err, &recErr):
		return "TLS: the server does not speak TLS"
	case certFailure(err):
		// The manager's status reads this as "no Redis server answered" (a certificate proves
		// a TLS listener, not a Redis); here, as the user, the precise cause is what helps.
		r, _ := cluster.CertificateFailure(err)
		return "TLS: server certificate failed verification (" + string(r) + ")"
	case class == cluster.ClassAuthenticationFailed:
		return "authentication failed (WRONGPASS / NOAUTH / NOPERM): check the Secret's credentials and the ACL user on this node"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("timed out after %s", timeout)
	case class == cluster.ClassClusterStateFail:
		return "answers, but reports cluster_state:fail"
	case errors.Is(err, client.ErrInvalidConfig):
		return "invalid config.json"
	}
	_, msg := cluster.Classify(err)
	return msg
}

// certFailure reports a server certificate that failed verification (cluster.CertificateFailure).
func certFailure(err error) bool {
	_, ok := cluster.CertificateFailure(err)
	return ok
}
