package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// server is one redis-server process on loopback, started by this package and stopped by PID.
type server struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts redis-server with no persistence on a free loopback port (a cluster node
// when clusterMode) and waits until it answers PING.
func startServer(dir string, clusterMode bool) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--daemonize", "no", "--save", "", "--appendonly", "no", "--dir", dir,
		"--logfile", fmt.Sprintf("%s/redis-%d.log", dir, port),
	}
	if clusterMode {
		bus, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", port), "--cluster-node-timeout", "5000")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the test binary
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting redis-server (is it on PATH? `make deps`): %w", err)
	}
	s := &server{port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	c := redis.NewClient(adminOptions(s.addr()))
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("redis-server on port %d exited", port)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on port %d: no PONG within 15s: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM to the server's PID, then SIGKILL after 5s, and waits for it.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
}

func adminOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr: addr, DialTimeout: 2 * time.Second, MaxRetries: -1, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// servers are the standalone server and the 3-master cluster every benchmark runs against.
type servers struct {
	dir        string
	standalone *server
	cluster    []*server
}

func (s *servers) stop() {
	for _, n := range append([]*server{s.standalone}, s.cluster...) {
		if n != nil {
			n.stop()
		}
	}
	_ = os.RemoveAll(s.dir)
}

func (s *servers) clusterAddrs() []string {
	var out []string
	for _, n := range s.cluster {
		out = append(out, n.addr())
	}
	return out
}

// startServers starts a standalone server and three cluster nodes, then forms the cluster with
// `redis-cli --cluster create` and waits until every node reports cluster_state:ok.
func startServers() (*servers, error) {
	dir, err := os.MkdirTemp("", "rconn-bench-")
	if err != nil {
		return nil, err
	}
	s := &servers{dir: dir}
	fail := func(err error) (*servers, error) {
		s.stop()
		return nil, err
	}
	if s.standalone, err = startServer(dir, false); err != nil {
		return fail(err)
	}
	for range 3 {
		n, err := startServer(dir, true)
		if err != nil {
			return fail(err)
		}
		s.cluster = append(s.cluster, n)
	}
	args := append([]string{"--cluster", "create"}, s.clusterAddrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("redis-cli --cluster create: %w: %s", err, out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range s.cluster {
		c := redis.NewClient(adminOptions(n.addr()))
		for {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3") {
				break
			}
			if ctx.Err() != nil {
				_ = c.Close()
				return fail(fmt.Errorf("node %s: cluster not ok: %v %s", n.addr(), err, info)) //nolint:errorlint // err is nil when the node answers but is not ok yet
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = c.Close()
	}
	return s, nil
}
