package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/httpstream" //nolint:staticcheck // client-go v0.37 portforward still takes this package's Dialer, not k8s.io/streaming's
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/client/kubesource"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	"github.com/rconn-dev/redis-connection-operator/pkg/proxy"
)

type portForwardFlags struct {
	address    string
	sessionDir string
	seedPort   int
	nodePorts  int
	verbose    bool
}

func newPortForwardCommand(a *App) *cobra.Command {
	var f portForwardFlags
	cmd := &cobra.Command{
		Use:   "port-forward NAME",
		Short: "Laptop access: port-forward to every node's pod and run the rconn proxy over them",
		Long: `Finds the pod behind every node of the RedisConnection (status.nodes: a pod whose IP is the
announced address, or the EndpointSlice endpoint behind the announced or mapped address),
port-forwards to each through the API server (like kubectl port-forward; needs create on
pods/portforward), and runs the rconn proxy in-process over those forwards: a seed listener plus
one listener per node on --address, with CLUSTER SLOTS/SHARDS/NODES and MOVED/ASK rewritten to
name them. Every connection must first authenticate with a password made for this run (AUTH or
HELLO AUTH, any user name), written to a file only you can read and removed on exit: other
users of this machine cannot use the forwards, the Secret's credentials or its client
certificate. The proxy then authenticates to the node with the Secret's credentials. Then any
client works from this machine:

  REDISCLI_AUTH="$(cat <the printed file>)" redis-cli -c -p 7000

A non-loopback --address is warned about: the session password and all traffic then cross
the network in plaintext.

The proxy reads the ConfigMap and Secret through the API (get+watch on both) and follows them
live; TLS to the nodes (through the forwards) uses the Secret's material and each node's mapped
host as server name. A forward that breaks (pod restart) is re-established; nodes added later
need a restart of this command. Ctrl-C stops everything.`,
		Example: "  kubectl rconn port-forward cache\n  kubectl rconn port-forward cache --seed-port 7100",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.portForward(cmd.Context(), args[0], f)
		},
	}
	cmd.Flags().StringVar(&f.address, "address", proxy.DefaultListenHost, "address the seed and node listeners bind")
	cmd.Flags().IntVar(&f.seedPort, "seed-port", 7000, "seed listener port; node listeners take the ports after it (0: ephemeral ports)")
	cmd.Flags().IntVar(&f.nodePorts, "node-ports", proxy.DefaultNodePorts, "how many ports after --seed-port node listeners may take")
	cmd.Flags().BoolVar(&f.verbose, "verbose", false, "log the proxy's debug detail")
	cmd.Flags().StringVar(&f.sessionDir, "session-dir", "", "where the 0700 directory holding the session password file is made (default $XDG_RUNTIME_DIR, else the temp directory)")
	return cmd
}

func (a *App) portForward(ctx context.Context, name string, f portForwardFlags) error {
	if w := addressWarning(f.address); w != "" {
		_, _ = fmt.Fprintln(a.Err, w)
	}
	c, err := a.connection(ctx, name)
	if err != nil {
		return err
	}
	targets, err := a.podTargets(ctx, c)
	if err != nil {
		return err
	}
	fw := &forwards{byAddr: map[string]*forward{}}
	defer fw.stop()
	for _, t := range targets {
		fwd := fw.add(ctx, a, c.rc.Namespace, t)
		for _, addr := range t.addrs {
			fw.byAddr[addr] = fwd
		}
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, fwd := range fw.all {
		if err := fwd.wait(startCtx); err != nil {
			return fmt.Errorf("port-forward to pod %s/%s port %d: %w", c.rc.Namespace, fwd.pod, fwd.port, err)
		}
		_, _ = fmt.Fprintf(a.Out, "forwarding %s -> pod %s/%s port %d\n", fwd.local(), c.rc.Namespace, fwd.pod, fwd.port)
	}

	src, err := kubesource.NewSource(kubesource.Options{Config: a.rest, Namespace: c.rc.Namespace, Name: c.rc.Name, ConfigMap: c.configMap, Secret: c.secret})
	if err != nil {
		return err
	}
	w, err := client.Watch(startCtx, src, client.WatchOptions{OnError: func(err error) { _, _ = fmt.Fprintln(a.Err, "config:", err) }})
	if err != nil {
		return fmt.Errorf("reading ConfigMap %s and Secret %s: %w", c.configMap, c.secret, err)
	}
	defer w.Close()
	sess, err := newSession(f.sessionDir)
	if err != nil {
		return err
	}
	defer sess.remove()
	sess.setCredentials(w.Current().Credentials())
	roots := rootsThrough(targets)
	p, err := proxy.Start(startCtx, throughForwards(w.Current(), roots), proxyOptions(a, f, fw.dial, sess))
	if err != nil {
		return err
	}
	defer func() { _ = p.Close() }()
	a.printListeners(p, f, sess)
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-w.Updates():
			sess.setCredentials(r.Credentials())
			_ = p.Apply(throughForwards(r, roots)) // Apply logs what it could not apply
		}
	}
}

// proxyOptions are the options of port-forward's proxy: every connection authenticates with
// the session password before a node is dialed (session.go says why).
func proxyOptions(a *App, f portForwardFlags, dial cluster.DialFunc, sess *session) proxy.Options {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	return proxy.Options{
		ListenHost: f.address, SeedPort: f.seedPort, NodePorts: f.nodePorts, Dial: dial, Handshake: sess.handshake,
		Logger: slog.New(slog.NewTextHandler(a.Err, &slog.HandlerOptions{Level: level})),
	}
}

// printListeners says where the listeners are and how to authenticate to them. The password
// itself is not printed: terminals are logged and shared; the file is readable by this user
// only, and $(cat FILE) in REDISCLI_AUTH keeps it off redis-cli's command line.
func (a *App) printListeners(p *proxy.Proxy, f portForwardFlags, sess *session) {
	for _, n := range p.Nodes() {
		_, _ = fmt.Fprintf(a.Out, "node %s %s -> %s\n", shortID(n.ID), n.Announced, n.Listen)
	}
	_, _ = fmt.Fprintf(a.Out, "session password: %s (this run only, readable by you only; every connection must AUTH with it, any user name)\n", sess.file)
	_, port, _ := net.SplitHostPort(p.SeedAddr())
	_, _ = fmt.Fprintf(a.Out, "seed %s: REDISCLI_AUTH=\"$(cat %s)\" redis-cli -c -h %s -p %s (Ctrl-C to stop)\n", p.SeedAddr(), sess.file, f.address, port)
}

// addressWarning says what a non-loopback --address exposes ("" for loopback).
func addressWarning(address string) string {
	if address == "localhost" {
		return ""
	}
	if ip := net.ParseIP(address); ip != nil && ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("warning: --address %s is not a loopback address: other hosts can connect to the listeners; they need the session password, but it and every command and reply cross the network in plaintext", address)
}

// throughForwards makes the proxy discover the topology through the forwarded nodes: the root
// nodes config.json names (a Service, usually) have no forward.
func throughForwards(r *client.Resolved, roots []string) *client.Resolved {
	out := *r
	cfg := *r.Config
	scheme := "redis://"
	if cfg.Defaults.Socket.TLS {
		scheme = "rediss://"
	}
	cfg.RootNodes = nil
	for _, a := range roots {
		cfg.RootNodes = append(cfg.RootNodes, client.RootNodeConfig{URL: scheme + a})
	}
	out.Config = &cfg
	return &out
}

func rootsThrough(ts []podTarget) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.announced)
	}
	return out
}

// podTarget is one node and the pod port behind it.
type podTarget struct {
	announced string
	// addrs are the addresses the proxy may dial for this node: announced and mapped.
	addrs []string
	pod   string
	port  int
}

// podTargets finds the pod behind every node of the status.
func (a *App) podTargets(ctx context.Context, c *connection) ([]podTarget, error) {
	nodes := c.rc.Status.Nodes
	if len(nodes) == 0 {
		return nil, fmt.Errorf("RedisConnection %s/%s lists no nodes yet (kubectl rconn status %s)", c.rc.Namespace, c.rc.Name, c.rc.Name)
	}
	slices := &discoveryv1.EndpointSliceList{}
	if err := a.kube.List(ctx, slices, ctrlclient.InNamespace(c.rc.Namespace)); err != nil {
		return nil, fmt.Errorf("listing EndpointSlices in %s: %w", c.rc.Namespace, err)
	}
	var out []podTarget
	var missing []string
	for _, n := range nodes {
		t := podTarget{announced: n.Announced, addrs: []string{n.Announced}}
		if n.Mapped != "" && n.Mapped != n.Announced {
			t.addrs = append(t.addrs, n.Mapped)
		}
		for _, addr := range t.addrs {
			pod, port, err := a.podFor(ctx, c.rc.Namespace, addr, slices.Items)
			if err != nil {
				return nil, err
			}
			if pod != "" {
				t.pod, t.port = pod, port
				break
			}
		}
		if t.pod == "" {
			missing = append(missing, n.Announced)
			continue
		}
		out = append(out, t)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no pod found behind node(s) %s in namespace %s: port-forward needs a pod whose IP is the announced address, or an EndpointSlice endpoint with that address or hostname", strings.Join(missing, ", "), c.rc.Namespace)
	}
	return out, nil
}

// podFor finds the pod behind host:port: an EndpointSlice endpoint with that address (or, for
// a name, with that hostname in the Service its second label names), else a pod with that IP.
func (a *App) podFor(ctx context.Context, ns, addr string, slices []discoveryv1.EndpointSlice) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, nil
	}
	port, _ := strconv.Atoi(p)
	ip := net.ParseIP(host) != nil
	labels := strings.Split(host, ".")
	for _, s := range slices {
		for _, ep := range s.Endpoints {
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			match := false
			if ip {
				for _, x := range ep.Addresses {
					match = match || x == host
				}
			} else if ep.Hostname != nil && len(labels) > 1 {
				match = *ep.Hostname == labels[0] && s.Labels[discoveryv1.LabelServiceName] == labels[1]
			}
			if match {
				return ep.TargetRef.Name, port, nil
			}
		}
	}
	if !ip {
		return "", 0, nil
	}
	pods := &corev1.PodList{}
	if err := a.kube.List(ctx, pods, ctrlclient.InNamespace(ns), ctrlclient.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("status.podIP", host)}); err != nil {
		return "", 0, fmt.Errorf("listing pods with IP %s in %s: %w", host, ns, err)
	}
	for _, pod := range pods.Items {
		if pod.Status.Phase == corev1.PodRunning {
			return pod.Name, port, nil
		}
	}
	return "", 0, nil
}

// forwards are the port-forwards of one run and the proxy's base dial function over them.
type forwards struct {
	all    []*forward
	byAddr map[string]*forward
	wg     sync.WaitGroup
}

func (fw *forwards) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	f := fw.byAddr[addr]
	if f == nil {
		return nil, fmt.Errorf("no port-forward for %s (a node that joined after port-forward started: restart it)", addr)
	}
	l := f.local()
	if l == "" {
		return nil, fmt.Errorf("port-forward to pod %s is being re-established", f.pod)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, l)
}

func (fw *forwards) stop() {
	for _, f := range fw.all {
		f.cancel()
	}
	fw.wg.Wait()
}

// add starts a forward to pod:port (one per pod and port) that re-establishes itself until ctx
// ends or stop.
func (fw *forwards) add(ctx context.Context, a *App, ns string, t podTarget) *forward {
	for _, f := range fw.all {
		if f.pod == t.pod && f.port == t.port {
			return f
		}
	}
	f := &forward{pod: t.pod, port: t.port, ready: make(chan struct{}), errs: make(chan error, 1)}
	ctx, f.cancel = context.WithCancel(ctx)
	fw.all = append(fw.all, f)
	fw.wg.Add(1)
	go func() {
		defer fw.wg.Done()
		f.run(ctx, a, ns)
	}()
	return f
}

type forward struct {
	pod    string
	port   int
	addr   atomic.Pointer[string]
	ready  chan struct{} // closed once the first forward listens
	once   sync.Once
	errs   chan error // the first attempt's failure, when it fails before ready
	cancel context.CancelFunc
}

func (f *forward) local() string {
	if p := f.addr.Load(); p != nil {
		return *p
	}
	return ""
}

func (f *forward) wait(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case err := <-f.errs:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *forward) run(ctx context.Context, a *App, ns string) {
	for attempt := 0; ctx.Err() == nil; attempt++ {
		err := f.once1(ctx, a, ns)
		f.addr.Store(nil)
		if attempt == 0 {
			select {
			case <-f.ready:
			default:
				f.errs <- err
				return
			}
		}
		if ctx.Err() == nil {
			_, _ = fmt.Fprintf(a.Err, "port-forward to pod %s/%s ended (%v): re-establishing\n", ns, f.pod, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// once1 runs one client-go port-forward until it fails or ctx ends.
func (f *forward) once1(ctx context.Context, a *App, ns string) error {
	d, err := a.portForwardDialer(ns, f.pod)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	stop := make(chan struct{})
	pf, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", f.port)}, stop, ready, io.Discard, a.Err)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		if err == nil {
			err = errors.New("ended before it was ready")
		}
		return err
	case <-ctx.Done():
		close(stop)
		<-done //nolint:errcheck // it ends because we stopped it: its error says only that
		return ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err == nil && len(ports) != 1 {
		err = fmt.Errorf("%d local ports, want 1", len(ports))
	}
	if err != nil {
		close(stop)
		<-done //nolint:errcheck // it ends because we stopped it: its error says only that
		return fmt.Errorf("local port: %w", err)
	}
	l := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local)))
	f.addr.Store(&l)
	f.once.Do(func() { close(f.ready) })
	select {
	case err := <-done:
		if err == nil {
			err = errors.New("connection closed")
		}
		return err
	case <-ctx.Done():
		close(stop)
		<-done //nolint:errcheck // it ends because we stopped it: its error says only that
		return ctx.Err()
	}
}

// portForwardDialer dials the pod's portforward subresource the way kubectl does: WebSockets
// (SPDY tunneled), falling back to SPDY where the server does not upgrade.
func (a *App) portForwardDialer(ns, pod string) (httpstream.Dialer, error) {
	u := a.clientset.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	transport, upgrader, err := spdy.RoundTripperFor(a.rest)
	if err != nil {
		return nil, err
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	ws, err := portforward.NewSPDYOverWebsocketDialer(u, a.rest)
	if err != nil {
		return nil, err
	}
	return portforward.NewFallbackDialer(ws, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	}), nil
}

var _ cluster.DialFunc = (*forwards)(nil).dial
