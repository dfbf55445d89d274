package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// The rig's cluster DNS: a real CoreDNS (hack/coredns-build.sh: bind, errors, log and kubernetes
// only, no forward or cache) that answers the cluster domain from the rig's API server on a free
// loopback port, and nothing else. A name outside the cluster domain is REFUSED (no server block
// serves it); a name inside it that the API does not know is NXDOMAIN. Nothing is ever forwarded.
//
// What it answers is the kubernetes plugin's view of EndpointSlices: an endpoint is published
// only when its ready condition is true or unset; serving and terminating are not looked at,
// nor is the Service's publishNotReadyAddresses (the EndpointSlice controller honours that by
// writing ready=true). See dns_test.go for the recorded behaviour.

// DNSTTL is the TTL of every answer, in seconds: small, so a changed EndpointSlice is seen at
// once by anything that caches (Go's resolver does not).
const DNSTTL = 1

// DNSOptions configures StartDNS.
type DNSOptions struct {
	// Kubeconfig is the kubeconfig file CoreDNS watches Services and EndpointSlices with
	// (required; its server should be a loopback IP literal).
	Kubeconfig string
	// ClusterDomain is the zone CoreDNS is authoritative for (default cluster.local).
	ClusterDomain string
	// AssetsDir holds the coredns binary (default $RCONN_RIG_ASSETS, else <repo root>/bin/rig,
	// filled by hack/rig-assets.sh or hack/coredns-build.sh).
	AssetsDir string
	// ReadyTimeout bounds the wait for the first authoritative answer (default 30s).
	ReadyTimeout time.Duration
	// Listen is the IP:port to serve on (default: a free port on 127.0.0.1). The pod network's
	// resolver is the host end of its veth on port 53 (see PodNetwork.SetResolver): programs
	// inside the pod network resolve through /etc/resolv.conf, which has no port.
	Listen string
}

// DNS is a running CoreDNS process.
type DNS struct {
	addr    string
	domain  string
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	stop    sync.Once
}

// DNSAssetsDir is where the rig's binaries are: $RCONN_RIG_ASSETS, else <repo root>/bin/rig.
func DNSAssetsDir() (string, error) {
	if dir := os.Getenv("RCONN_RIG_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "rig"), nil
}

// StartDNS starts CoreDNS and waits until it answers authoritatively for the cluster domain
// (its informers have synced). Call Stop when done.
func StartDNS(opts DNSOptions) (*DNS, error) {
	if opts.Kubeconfig == "" {
		return nil, errors.New("rig dns: DNSOptions.Kubeconfig is required")
	}
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	opts.ClusterDomain = strings.TrimSuffix(opts.ClusterDomain, ".")
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	if opts.AssetsDir == "" {
		dir, err := DNSAssetsDir()
		if err != nil {
			return nil, fmt.Errorf("rig dns: %w", err)
		}
		opts.AssetsDir = dir
	}
	bin := filepath.Join(opts.AssetsDir, "coredns")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("rig dns: no coredns in %s: run hack/rig-assets.sh (or hack/coredns-build.sh)", opts.AssetsDir)
	}
	kubeconfig, err := filepath.Abs(opts.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("rig dns: %w", err)
	}
	// A free port can be taken between the probe and CoreDNS's bind: try a few.
	var lastErr error
	for range 3 {
		d, err := startDNSOnce(bin, kubeconfig, opts)
		if err == nil {
			return d, nil
		}
		lastErr = err
		if !errors.Is(err, errDNSAddrInUse) || opts.Listen != "" {
			break
		}
	}
	return nil, lastErr
}

// StartTestDNS is StartDNS for a test: it fails t on error and stops CoreDNS at t's Cleanup.
func StartTestDNS(t interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}, opts DNSOptions) *DNS {
	t.Helper()
	d, err := StartDNS(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(d.Stop)
	return d
}

var errDNSAddrInUse = errors.New("address already in use")

func startDNSOnce(bin, kubeconfig string, opts DNSOptions) (*DNS, error) {
	ip, port, err := dnsListen(opts.Listen)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rig-dns-")
	if err != nil {
		return nil, fmt.Errorf("rig dns: %w", err)
	}
	d := &DNS{
		addr:    net.JoinHostPort(ip, strconv.Itoa(port)),
		domain:  opts.ClusterDomain,
		dir:     dir,
		logPath: filepath.Join(dir, "coredns.log"),
		exited:  make(chan struct{}),
	}
	corefile := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(corefile, []byte(dnsCorefile(opts.ClusterDomain, ip, port, kubeconfig)), 0o600); err != nil {
		d.cleanupDir()
		return nil, fmt.Errorf("rig dns: %w", err)
	}
	logFile, err := os.Create(d.logPath)
	if err != nil {
		d.cleanupDir()
		return nil, fmt.Errorf("rig dns: %w", err)
	}
	defer func() { _ = logFile.Close() }() // the child has its own descriptor
	d.cmd = exec.Command(bin, "-conf", corefile)
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	// Environment: nothing of this process's KUBECONFIG or in-cluster variables.
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	// Dies with the test binary (or the demo) even when it is killed.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		d.cleanupDir()
		return nil, fmt.Errorf("rig dns: starting %s: %w", bin, err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	if err := d.waitReady(opts.ReadyTimeout); err != nil {
		tail := d.LogTail(30)
		d.Stop()
		if strings.Contains(tail, "address already in use") {
			err = fmt.Errorf("%w: %w", errDNSAddrInUse, err)
		}
		return nil, fmt.Errorf("rig dns: coredns on %s: %w\n--- coredns log (tail) ---\n%s", d.addr, err, tail)
	}
	return d, nil
}

// dnsListen splits DNSOptions.Listen, or picks a free loopback port.
func dnsListen(listen string) (string, int, error) {
	if listen == "" {
		port, err := freeDNSPort()
		if err != nil {
			return "", 0, fmt.Errorf("rig dns: finding a free port: %w", err)
		}
		return "127.0.0.1", port, nil
	}
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("rig dns: Listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("rig dns: Listen %q: %w", listen, err)
	}
	return host, port, nil
}

// dnsCorefile serves only the cluster domain, on ip:port (UDP and TCP). Pods mode is
// disabled (no 1-2-3-4.ns.pod names: rconn uses PodDNS hostnames from EndpointSlices).
func dnsCorefile(domain, ip string, port int, kubeconfig string) string {
	return fmt.Sprintf(`%s:%d {
    bind %s
    errors
    log
    kubernetes %s {
        kubeconfig %q
        pods disabled
        ttl %d
    }
}
`, domain, port, ip, domain, kubeconfig, DNSTTL)
}

// freeDNSPort finds a loopback port free for both TCP and UDP.
func freeDNSPort() (int, error) {
	var lastErr error
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = ln.Close()
		if err != nil {
			lastErr = err
			continue
		}
		_ = pc.Close()
		return port, nil
	}
	return 0, lastErr
}

// waitReady polls kubernetes.default.svc.<domain> until CoreDNS answers it authoritatively: an
// address, or NXDOMAIN (before its informers sync the kubernetes plugin answers SERVFAIL).
func (d *DNS) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	r := d.Resolver()
	name := "kubernetes.default.svc." + d.domain + "."
	var lastErr error
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("exited before answering (%v)", d.cmd.ProcessState)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.LookupHost(ctx, name)
		cancel()
		var dnsErr *net.DNSError
		if err == nil || (errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			return nil
		}
		lastErr = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no authoritative answer for %s within %v (last: %w)", name, timeout, lastErr)
		}
		select {
		case <-d.exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Addr is CoreDNS's host:port (127.0.0.1 unless DNSOptions.Listen said otherwise; UDP and
// TCP): the manager's --dns-server.
func (d *DNS) Addr() string { return d.addr }

// ClusterDomain is the zone CoreDNS serves, without a trailing dot.
func (d *DNS) ClusterDomain() string { return d.domain }

// Resolver resolves through this CoreDNS only: every query Go's resolver makes, to whatever
// server address it picked from /etc/resolv.conf, is dialed to Addr instead. Search domains
// and ndots from /etc/resolv.conf still apply to names without a trailing dot (they too are
// asked of this server only, which refuses them); /etc/hosts is consulted first, as always.
func (d *DNS) Resolver() *net.Resolver {
	addr := d.addr
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, addr)
		},
	}
}

// LogPath is the file holding CoreDNS's stdout and stderr (a line per query: the log plugin).
// It is removed by Stop.
func (d *DNS) LogPath() string { return d.logPath }

// LogTail returns the last n lines of CoreDNS's output.
func (d *DNS) LogTail(n int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Stop ends the CoreDNS process (SIGTERM by PID, SIGKILL after 5s) and removes its files.
// Safe to call more than once.
func (d *DNS) Stop() {
	d.stop.Do(func() {
		if d.cmd != nil && d.cmd.Process != nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(5 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.exited
			}
		}
		d.cleanupDir()
	})
}

func (d *DNS) cleanupDir() { _ = os.RemoveAll(d.dir) }
