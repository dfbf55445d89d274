// Package redistest starts real redis-server processes on loopback for tests: standalone
// servers, clusters (with replicas, announcing unreachable hostnames, or announcing translated
// ports), TLS with mutual auth and ACL users. Everything it starts is stopped by the test's
// Cleanup, also when the test fails, and dies with the test binary (Pdeathsig) if that crashes.
//
// It needs redis-server on PATH (Debian's redis-server package; `make deps` installs it).
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"

	"github.com/rconn-dev/redis-connection-operator/internal/tb"

	"github.com/redis/go-redis/v9"

	"github.com/rconn-dev/redis-connection-operator/internal/world/certs"
)

// TB is internal/tb's: the one interface every local-world helper takes.
type TB = tb.TB

// User is an ACL user created at start-up.
type User struct {
	Name     string
	Password string
	// Rules are ACL rules after "on >password", e.g. "~* &* +@all". Empty means "~* &* +@all".
	Rules string
}

// ServerOptions configure one redis-server.
type ServerOptions struct {
	// TLS, when set, makes the server speak TLS only, requiring client certificates.
	TLS *TLS
	// Password sets requirepass for the default user (and masterauth for replication).
	Password string
	// Users are extra ACL users.
	Users []User
	// Config lines appended verbatim ("name value").
	Config []string
}

// Server is one running (or stopped) redis-server.
type Server struct {
	// Port is the client port (the TLS port when TLS is on).
	Port int
	// BusPort is the cluster bus port (0 when not in cluster mode).
	BusPort int
	// Dir holds redis.conf, redis.log and nodes.conf.
	Dir string

	opts ServerOptions
	conf string
	// launch runs redis-server under a wrapper (argv before "redis-server"); sentinel adds
	// --sentinel. See sentinel.go.
	launch   []string
	sentinel bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Addr is "127.0.0.1:<port>", the address that really listens.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// StartServer starts a standalone redis-server and waits until it answers PING.
func StartServer(t TB, opts ServerOptions) *Server {
	tb.Integration(t, "redis-server")
	t.Helper()
	s, err := startServer(t, opts, nil)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// clusterConf is what a cluster node adds to its configuration.
type clusterConf struct {
	lines []string
	// noBus: not a cluster node (no cluster bus port): Sentinel groups use clusterConf for
	// their extra lines and launch wrapper.
	noBus bool
	// launch and sentinel: see Server.
	launch   []string
	sentinel bool
}

func startServer(t TB, opts ServerOptions, cc *clusterConf) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not on PATH: run `make deps` (Debian package redis-server)")
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var lastErr error
	// A port picked free can be taken before redis-server binds it: try a few times.
	for attempt := 0; attempt < 5; attempt++ {
		s := &Server{Dir: dir, opts: opts}
		if s.Port, err = FreePort(); err != nil {
			return nil, err
		}
		var extra []string
		if cc != nil && cc.noBus {
			s.launch, s.sentinel = cc.launch, cc.sentinel
			extra = append(extra, cc.lines...)
		} else if cc != nil {
			if s.BusPort, err = FreePort(); err != nil {
				return nil, err
			}
			extra = append(extra, "cluster-port "+strconv.Itoa(s.BusPort))
			extra = append(extra, cc.lines...)
		}
		s.conf = s.config(extra)
		_ = os.Remove(filepath.Join(dir, "nodes.conf"))
		if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(s.conf), 0o600); err != nil {
			return nil, err
		}
		if lastErr = s.start(t); lastErr == nil {
			t.Cleanup(s.Stop)
			return s, nil
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	return nil, lastErr
}

func (s *Server) config(extra []string) string {
	lines := []string{
		"bind 127.0.0.1",
		"protected-mode no",
		"daemonize no",
		"dir " + s.Dir,
		"logfile " + filepath.Join(s.Dir, "redis.log"),
		`save ""`,
		"appendonly no",
		"enable-debug-command local",
		// A replica's full sync starts at once: the default waits 5 s for more replicas to
		// share the transfer, on every formation with replicas and every resync after a
		// restart or failover (test/scale does the same).
		"repl-diskless-sync-delay 0",
		// CLUSTER SHARDS shows a replica as "loading", not "online", while its replication
		// offset is 0; on an idle master it moves with the master's first replication PING,
		// sent every repl-ping-replica-period (default 10 s). A cluster with replicas formed
		// in 13 s, now 5 s (WaitHealthy waits for every node online).
		"repl-ping-replica-period 1",
	}
	if t := s.opts.TLS; t != nil {
		lines = append(lines,
			"port 0",
			"tls-port "+strconv.Itoa(s.Port),
			"tls-cert-file "+t.ServerCertFile,
			"tls-key-file "+t.ServerKeyFile,
			"tls-client-cert-file "+t.ServerCertFile,
			"tls-client-key-file "+t.ServerKeyFile,
			"tls-ca-cert-file "+t.CAFile,
			"tls-auth-clients yes",
			"tls-replication yes",
			"tls-cluster yes",
		)
	} else {
		lines = append(lines, "port "+strconv.Itoa(s.Port))
	}
	if s.opts.Password != "" {
		lines = append(lines, "requirepass "+s.opts.Password, "masterauth "+s.opts.Password)
	}
	for _, u := range s.opts.Users {
		rules := u.Rules
		if rules == "" {
			rules = "~* &* +@all"
		}
		lines = append(lines, fmt.Sprintf("user %s on >%s %s", u.Name, u.Password, rules))
	}
	lines = append(lines, extra...)
	lines = append(lines, s.opts.Config...)
	return strings.Join(lines, "\n") + "\n"
}

// start launches the process with the existing redis.conf and waits for PING.
func (s *Server) start(_ TB) error {
	argv := append(append([]string(nil), s.launch...), "redis-server", filepath.Join(s.Dir, "redis.conf"))
	if s.sentinel {
		argv = append(argv, "--sentinel")
	}
	cmd := exec.Command(argv[0], argv[1:]...) //nolint:gosec // test helper: fixed program, arguments built here
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := s.Client()
	defer func() { _ = c.Close() }()
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited: %s", s.Port, s.logTail())
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("redis-server on port %d did not answer PING within 15s (%w): %s", s.Port, err, s.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Restart starts a stopped or killed server again on the same port with the same config.
func (s *Server) Restart(t TB) {
	t.Helper()
	if s.Running() {
		t.Fatalf("redistest: server on port %d is still running", s.Port)
	}
	if err := s.start(t); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

// tlsDirectives are the configuration lines RestartWithTLS points at new files.
var tlsDirectives = []string{"tls-cert-file", "tls-key-file", "tls-client-cert-file", "tls-client-key-file", "tls-ca-cert-file"}

// RestartWithTLS stops s (SIGTERM, so a sentinel flushes its state into its configuration
// file) and starts it again on the same port serving m's certificates: the tls-* lines of its
// configuration (as the server left it) now name m's files. Options and Client use m from then
// on. For certificate rotation on servers that cannot change TLS files live (Sentinel has no
// CONFIG SET); the server must have been started with TLS.
func (s *Server) RestartWithTLS(t TB, m *TLS) {
	t.Helper()
	if s.opts.TLS == nil || m == nil {
		t.Fatalf("redistest: RestartWithTLS needs a TLS server and material")
	}
	s.Stop()
	file := filepath.Join(s.Dir, "redis.conf")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	files := map[string]string{
		"tls-cert-file": m.ServerCertFile, "tls-key-file": m.ServerKeyFile,
		"tls-client-cert-file": m.ServerCertFile, "tls-client-key-file": m.ServerKeyFile,
		"tls-ca-cert-file": m.CAFile,
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		for _, d := range tlsDirectives {
			if strings.HasPrefix(l, d+" ") {
				lines[i] = d + " " + files[d]
			}
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s.mu.Lock()
	s.opts.TLS = m
	s.mu.Unlock()
	if err := s.start(t); err != nil {
		t.Fatalf("redistest: restart with new TLS material: %v", err)
	}
}

// Running tells whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL, 0) }

// Stop ends the process with SIGTERM, then SIGKILL after 5s, and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM, 5*time.Second) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-exited:
			return
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-exited
}

// Options returns go-redis options that reach this server as the admin (default user).
func (s *Server) Options() *redis.Options {
	o := &redis.Options{
		Addr:            s.Addr(),
		Password:        s.opts.Password,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     5 * time.Second,
		MaxRetries:      -1,
		PoolSize:        4,
		DisableIdentity: true,
		// Never let go-redis resolve a name (its maintenance-notification auto mode does).
		MaintNotificationsConfig: cluster.NoMaintNotifications(),
	}
	s.mu.Lock()
	m := s.opts.TLS // RestartWithTLS may change it
	s.mu.Unlock()
	if m != nil {
		o.TLSConfig = m.ClientConfig("")
	}
	return o
}

// Client returns a new admin client; the caller closes it.
func (s *Server) Client() *redis.Client { return redis.NewClient(s.Options()) }

// Log returns the server's log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

func (s *Server) logTail() string {
	lines := strings.Split(strings.TrimSpace(s.Log()), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// Info returns INFO <section> as a map.
func Info(ctx context.Context, c redis.Cmdable, section string) (map[string]string, error) {
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TLS is certificate material for TLS servers and their clients, written to files.
type TLS struct {
	CA     *certs.CA
	Server *certs.Pair
	Client *certs.Pair

	CAFile, ServerCertFile, ServerKeyFile, ClientCertFile, ClientKeyFile string
}

// TLSOptions choose the names in the server certificate. Zero value: IP 127.0.0.1 and
// "localhost".
type TLSOptions struct {
	DNSNames []string
	IPs      []net.IP
}

// NewTLS issues a CA, a server certificate (used by every node, also as a client on the bus)
// and a client certificate, and writes them into a temporary directory removed at Cleanup.
func NewTLS(t TB, o TLSOptions) *TLS {
	t.Helper()
	if len(o.DNSNames) == 0 && len(o.IPs) == 0 {
		o.DNSNames, o.IPs = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	dir, err := os.MkdirTemp("", "redistest-tls-")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ca, err := certs.NewCA("rconn test CA")
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	srv, err := ca.Issue(certs.Request{CommonName: "redis", DNSNames: o.DNSNames, IPs: o.IPs, Server: true, Client: true})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	cli, err := ca.Issue(certs.Request{CommonName: "app", Client: true})
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	m := &TLS{CA: ca, Server: srv, Client: cli, CAFile: filepath.Join(dir, "ca.crt")}
	if err := os.WriteFile(m.CAFile, ca.CertPEM, 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	if m.ServerCertFile, m.ServerKeyFile, err = srv.WriteFiles(dir, "server"); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	if m.ClientCertFile, m.ClientKeyFile, err = cli.WriteFiles(dir, "client"); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return m
}

// ClientConfig is a tls.Config with the client certificate that trusts the CA. serverName ""
// means the certificate's first name (so admin connections to 127.0.0.1 always verify).
func (m *TLS) ClientConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(m.CA.Cert)
	cert, err := tls.X509KeyPair(m.Client.CertPEM, m.Client.KeyPEM)
	if err != nil {
		panic(err)
	}
	if serverName == "" {
		if len(m.Server.Cert.DNSNames) > 0 {
			serverName = m.Server.Cert.DNSNames[0]
		} else if len(m.Server.Cert.IPAddresses) > 0 {
			serverName = m.Server.Cert.IPAddresses[0].String()
		}
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

func tlsClient(conn net.Conn, cfg *tls.Config) *tls.Conn { return tls.Client(conn, cfg) }
