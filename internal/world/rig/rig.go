// Package rig is rconn's real Kubernetes control plane for the demo and the end-to-end suite:
// kube-apiserver + etcd (envtest), the real kube-controller-manager (statefulset, endpointslice,
// garbage-collector and serviceaccount controllers) and kube-scheduler, kwok in place of
// kubelets (nodes and the pod lifecycle), a pod network in a network namespace
// (198.18.N.0/24, see netns.go), a pod runner that plays kubelet + Redis image for the pods of a
// StatefulSet (pods.go) and a real cluster DNS (CoreDNS, dns.go).
//
// The binaries come from `make envtest rig-assets` (bin/k8s and bin/rig, or KUBEBUILDER_ASSETS
// and RCONN_RIG_ASSETS). Every process the rig starts dies with the process that started it
// (Pdeathsig), and Stop removes them and the network namespace; a namespace left by a killed
// run is removed by the next rig's start.
package rig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rconn-dev/redis-connection-operator/internal/world/kubetest"
)

// Options configure a rig.
type Options struct {
	// Nodes is the number of kwok nodes (default 3).
	Nodes int
	// Logf receives progress lines (default: discarded).
	Logf func(format string, args ...any)
	// Dir keeps logs and pod data (default: a new temporary directory, removed by Stop).
	Dir string
	// PortForward makes kwok serve the kubelet API on 127.0.0.1 (every node's InternalIP) so
	// that pods/portforward works through the API server for pods ForwardPod names (see
	// portforward.go).
	PortForward bool
}

// Rig is a running control plane with a pod network.
type Rig struct {
	Env *envtest.Environment
	// Config and Kubeconfig are a system:masters user's.
	Config     *rest.Config
	Kubeconfig string
	Client     client.Client
	Clientset  kubernetes.Interface
	Net        *PodNetwork
	// Dir holds the logs (<component>.log) and pod data.
	Dir string

	opts    Options
	ownDir  bool
	mu      sync.Mutex
	procs   []*Process
	stops   []func()
	stopped bool
	// podDNSServer is the pods' CoreDNS, started by the first RedisSentinel.
	podDNSServer *DNS
}

// AssetsDir is where kube-controller-manager, kube-scheduler, kwok, kwok-stages/ and coredns
// are: $RCONN_RIG_ASSETS, else <repo>/bin/rig.
func AssetsDir() (string, error) {
	if d := os.Getenv("RCONN_RIG_ASSETS"); d != "" {
		return d, nil
	}
	root, err := kubetest.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "rig"), nil
}

// Available says why a rig cannot start here (nil when it can): missing binaries or missing
// privileges for network namespaces.
func Available() error {
	if err := CheckPrivileges(); err != nil {
		return err
	}
	dir, err := AssetsDir()
	if err != nil {
		return err
	}
	for _, b := range []string{"kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages/node-initialize.yaml"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("rig: %s missing in %s: run `make rig-assets`", b, dir)
		}
	}
	return nil
}

// Start brings the control plane up: API server, controllers, scheduler, nodes, kwok.
func Start(ctx context.Context, opts Options) (_ *Rig, err error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if err := Available(); err != nil {
		return nil, err
	}
	assets, _ := AssetsDir()
	r := &Rig{opts: opts, Dir: opts.Dir}
	if r.Dir == "" {
		if r.Dir, err = os.MkdirTemp("", "rconn-rig-"); err != nil {
			return nil, err
		}
		r.ownDir = true
	}
	defer func() {
		if err != nil {
			r.Stop()
		}
	}()
	start := time.Now()
	if r.Net, err = SetupPodNetwork(); err != nil {
		return nil, err
	}
	r.stops = append(r.stops, r.Net.Teardown)
	opts.Logf("rig: pod network %s: pods %s, host %s", r.Net.Name, r.Net.PodCIDR, r.Net.HostAddr)

	if r.Env, err = kubetest.NewEnvironment(); err != nil {
		return nil, err
	}
	if opts.PortForward {
		// The default prefers the Hostname address: a DNS query for the node's name.
		r.Env.ControlPlane.GetAPIServer().Configure().Set("kubelet-preferred-address-types", "InternalIP")
	}
	if _, err = r.Env.Start(); err != nil {
		return nil, fmt.Errorf("rig: starting kube-apiserver + etcd: %w", err)
	}
	r.stops = append(r.stops, func() { _ = r.Env.Stop() })
	u, err := r.Env.AddUser(envtest.User{Name: "rig-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	r.Config = u.Config()
	kc, err := u.KubeConfig()
	if err != nil {
		return nil, err
	}
	r.Kubeconfig = filepath.Join(r.Dir, "kubeconfig")
	if err := os.WriteFile(r.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	if r.Client, err = client.New(r.Config, client.Options{Scheme: kubetest.Scheme()}); err != nil {
		return nil, err
	}
	if r.Clientset, err = kubernetes.NewForConfig(r.Config); err != nil {
		return nil, err
	}
	opts.Logf("rig: kube-apiserver at %s", r.Config.Host)

	// etcd 3.4 has no RequestWatchProgress, which WatchList clients need.
	env := append(os.Environ(), "KUBE_FEATURE_WatchListClient=false")
	if _, err := r.StartProcess("kube-controller-manager", env, filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+r.Kubeconfig,
		// node-lifecycle removes the not-ready taint the API server puts on every new Node
		// once kwok reports it Ready (and would evict from a node kwok stopped renewing).
		"--controllers=statefulset-controller,endpointslice-controller,garbage-collector-controller,serviceaccount-controller,node-lifecycle-controller",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		// kwok renews node leases from one process on a loaded 2-core machine; a late renewal
		// must not make node-lifecycle taint the nodes (NoSchedule) in the middle of a rollout
		// (seen: replacement pods Pending for 40-56 s). Nodes here only fail when kwok does.
		"--node-monitor-grace-period=10m",
	); err != nil {
		return nil, err
	}
	if _, err := r.StartProcess("kube-scheduler", env, filepath.Join(assets, "kube-scheduler"),
		"--kubeconfig="+r.Kubeconfig, "--leader-elect=false", "--secure-port=0",
	); err != nil {
		return nil, err
	}
	// kwok manages only nodes that exist when it starts (seen: a node created later had its pods
	// ignored until kwok restarted), so the nodes come first.
	if err := r.createNodes(ctx); err != nil {
		return nil, err
	}
	stages, err := r.writeStages(assets)
	if err != nil {
		return nil, err
	}
	server := []string{"--server-address="}
	if opts.PortForward {
		if err := r.installPortForwardCRD(); err != nil {
			return nil, fmt.Errorf("rig: kwok's PortForward CRD: %w", err)
		}
		port, err := kubeletPort()
		if err != nil {
			return nil, err
		}
		server = []string{fmt.Sprintf("--server-address=127.0.0.1:%d", port), fmt.Sprintf("--node-port=%d", port), "--enable-crds=PortForward"}
	}
	if _, err := r.StartProcess("kwok", env, filepath.Join(assets, "kwok"), append([]string{
		"--kubeconfig=" + r.Kubeconfig,
		"--manage-nodes-with-label-selector=" + nodeLabel + "=" + nodeLabelValue,
		"--cidr=" + r.Net.PodCIDR.String(),
		"--node-ip=" + r.nodeIP(0),
		"--node-lease-duration-seconds=40",
		"--config=" + stages,
	}, server...)...); err != nil {
		return nil, err
	}
	if err := r.waitNodesReady(ctx); err != nil {
		return nil, err
	}
	if err := r.waitServiceAccount(ctx, "default"); err != nil {
		return nil, err
	}
	opts.Logf("rig: control plane up with %d kwok nodes in %s", opts.Nodes, time.Since(start).Round(100*time.Millisecond))
	return r, nil
}

const (
	nodeLabel      = "type"
	nodeLabelValue = "kwok"
)

func (r *Rig) nodeIP(i int) string {
	if r.opts.PortForward {
		return "127.0.0.1" // where kwok's server, the nodes' "kubelet", listens
	}
	return fmt.Sprintf("198.19.%d.%d", r.Net.Index, 10+i)
}

func (r *Rig) createNodes(ctx context.Context) error {
	for i := 0; i < r.opts.Nodes; i++ {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("kwok-node-%d", i),
			Labels:      map[string]string{nodeLabel: nodeLabelValue, corev1.LabelHostname: fmt.Sprintf("kwok-node-%d", i)},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
		}}
		if err := r.Client.Create(ctx, n); err != nil {
			return fmt.Errorf("rig: creating node: %w", err)
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: r.nodeIP(i)}, {Type: corev1.NodeHostName, Address: n.Name}}
		if err := r.Client.Status().Update(ctx, n); err != nil {
			return fmt.Errorf("rig: setting node addresses: %w", err)
		}
	}
	return nil
}

func (r *Rig) waitNodesReady(ctx context.Context) error {
	return poll(ctx, 60*time.Second, "kwok nodes Ready", func() (bool, error) {
		var nodes corev1.NodeList
		if err := r.Client.List(ctx, &nodes); err != nil {
			return false, err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == r.opts.Nodes, nil
	}, r.LogTail)
}

// waitServiceAccount waits for the serviceaccount controller to create name in "default" (pods
// need their ServiceAccount).
func (r *Rig) waitServiceAccount(ctx context.Context, ns string) error {
	return poll(ctx, 60*time.Second, "ServiceAccount default/default", func() (bool, error) {
		var sa corev1.ServiceAccount
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &sa)
		return err == nil, client.IgnoreNotFound(err)
	}, r.LogTail)
}

// WaitNamespace waits until a namespace's default ServiceAccount exists (the serviceaccount
// controller makes it; pods cannot be created before).
func (r *Rig) WaitNamespace(ctx context.Context, ns string) error {
	return r.waitServiceAccount(ctx, ns)
}

// Stop ends every process the rig started and removes the network namespace and (if the rig
// made it) its directory. Safe to call more than once.
func (r *Rig) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	procs := r.procs
	stops := r.stops
	r.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
	if r.ownDir && os.Getenv("RCONN_RIG_KEEP_DIR") == "" {
		_ = os.RemoveAll(r.Dir)
	}
}

// OnStop runs f when the rig stops (before the control plane goes).
func (r *Rig) OnStop(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stops = append(r.stops, f)
}

// LogTail returns the last lines of each component's log, for failure messages.
func (r *Rig) LogTail() string {
	r.mu.Lock()
	procs := append([]*Process(nil), r.procs...)
	r.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", p.Name, p.LogPath, tailFile(p.LogPath, 15))
	}
	return b.String()
}

// Process is a rig component (or a Redis pod's server).
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// StartProcess starts a component that dies with this process; its output goes to
// <Dir>/<name>.log. Stop ends it.
func (r *Rig) StartProcess(name string, env []string, bin string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p, err := startProcess(name, filepath.Join(r.Dir, name+".log"), cmd)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p, nil
}

func startProcess(name, logPath string, cmd *exec.Cmd) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("rig: starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's PID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig unless the process has exited.
func (p *Process) Signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Stop sends SIGTERM, then SIGKILL after 5 s, and waits for the exit.
func (p *Process) Stop() { p.StopWithin(5 * time.Second) }

// StopWithin sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Process) StopWithin(grace time.Duration) {
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// poll calls f every 100 ms until it says done, fails, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, f func() (bool, error), diag func() string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := f()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("rig: waiting for %s: %v", what, ctx.Err())
			if last != nil {
				msg += fmt.Sprintf(" (last error: %v)", last)
			}
			if diag != nil {
				msg += "\n" + diag()
			}
			return errors.New(msg)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kubectl runs kubectl (bin/k8s, else PATH) against the rig and returns its combined output.
func (r *Rig) Kubectl(args ...string) string {
	bin := "kubectl"
	if assets := r.Env.BinaryAssetsDirectory; assets != "" {
		if _, err := os.Stat(filepath.Join(assets, "kubectl")); err == nil {
			bin = filepath.Join(assets, "kubectl")
		}
	}
	out, err := exec.Command(bin, append([]string{"--kubeconfig", r.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return string(out)
}
