package rig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// The pod runner plays kubelet + Redis image + the charts' start script for the pods of one
// StatefulSet: for every Running pod a redis-server inside the pod network bound to the pod
// IP:6379, its data directory named after the pod (its PVC: nodes.conf survives restarts, and
// the start script rewrites the node's own IP in it, as the Bitnami chart's does); readiness as
// a probe would report it; on deletion a preStop wait, SIGTERM, SIGKILL at the end of the grace
// period, then the pod's removal, as a kubelet does.

const (
	// NotReadyAnnotation set to "true" on a pod makes its readiness probe fail while its
	// redis-server keeps serving (removing it makes the pod Ready again).
	NotReadyAnnotation = "rig.rconn.dev/not-ready"
	// PreStopAnnotation is a number of seconds the pod keeps serving after its deletion
	// starts (a preStop sleep), within its grace period.
	PreStopAnnotation = "rig.rconn.dev/pre-stop-seconds"
	// RedisPort is where every pod's redis-server listens.
	RedisPort = 6379
)

// RunnerOptions configure a pod runner.
type RunnerOptions struct {
	Namespace string
	// App selects the pods (app.kubernetes.io/name=App): a StatefulSet made by StatefulSet().
	App string
	// Service is the StatefulSet's headless Service (announced hostnames are
	// <pod>.<Service>.<Namespace>.svc.<ClusterDomain>).
	Service       string
	ClusterDomain string // default cluster.local
	// NodeTimeout is cluster-node-timeout (default 3 s).
	NodeTimeout time.Duration
	// ExtraConfig are more redis.conf lines (TLS, ACL).
	ExtraConfig []string
	// ClientOptions returns the options to reach a pod's server (readiness, bootstrap); nil:
	// plain TCP, no auth.
	ClientOptions func(addr string) *redis.Options
	// CLIArgs go to redis-cli before --cluster (TLS, auth).
	CLIArgs []string
	// PreStopFailover makes each Redis Cluster pod's preStop hand its slots over before
	// SIGTERM, as a chart hook running `redis-cli CLUSTER FAILOVER` on a replica of a
	// terminating master does: the master becomes a replica first, so no slot waits for failure
	// detection. Sentinel pods ignore it: they always run the Bitnami chart's preStops
	// (SentinelPods.NoPreStop turns them off).
	PreStopFailover bool
	// Sentinel makes the pods Bitnami-style Sentinel pods (sentinel.go) instead of Redis
	// Cluster nodes.
	Sentinel *SentinelPods
}

// Runner serves the pods of one StatefulSet.
type Runner struct {
	rig    *Rig
	opts   RunnerOptions
	data   string
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}

	mu    sync.Mutex
	pods  map[string]*podServer // by pod name
	errs  []string
	notes []string
	store cache.Store
}

type podServer struct {
	uid  string
	ip   string
	proc *Process
	// Sentinel mode: the pod's sentinel, and started, closed when the start script is over
	// (proc and sentinel are set, or it failed).
	sentinel *Process
	started  chan struct{}
	fails    int  // consecutive failed probes (Sentinel mode)
	ready    bool // what the runner last wrote to the pod's Ready condition
	stopping bool
}

// RunPods starts a pod runner; the rig's Stop ends it (and every redis-server it started).
func (r *Rig) RunPods(opts RunnerOptions) (*Runner, error) {
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 3 * time.Second
	}
	if opts.ClientOptions == nil {
		opts.ClientOptions = func(addr string) *redis.Options { return &redis.Options{Addr: addr} }
	}
	data := filepath.Join(r.Dir, "pods", opts.Namespace, opts.App)
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ru := &Runner{rig: r, opts: opts, data: data, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1), pods: map[string]*podServer{}}
	f := informers.NewSharedInformerFactoryWithOptions(r.Clientset, 0, informers.WithNamespace(opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.SelectorFromSet(labels.Set{AppLabel: opts.App}).String()
		}))
	inf := f.Core().V1().Pods().Informer()
	kick := func(any) { ru.poke() }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: kick, UpdateFunc: func(_, o any) { kick(o) }, DeleteFunc: kick}); err != nil {
		cancel()
		return nil, err
	}
	ru.store = inf.GetStore()
	go inf.Run(ctx.Done())
	go ru.loop(ctx)
	r.OnStop(ru.Stop)
	return ru, nil
}

func (ru *Runner) poke() {
	select {
	case ru.kick <- struct{}{}:
	default:
	}
}

// Stop kills every redis-server of the runner.
func (ru *Runner) Stop() {
	ru.cancel()
	<-ru.done
	ru.mu.Lock()
	defer ru.mu.Unlock()
	for _, ps := range ru.pods {
		ps.waitStarted(context.Background()) // the runner's context is over: the start script ends
		for _, p := range ps.procs() {
			p.StopWithin(2 * time.Second)
		}
	}
}

// Errors are what went wrong serving pods (a failed start, a failed status write).
func (ru *Runner) Errors() []string {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	return append([]string(nil), ru.errs...)
}

func (ru *Runner) errorf(format string, args ...any) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if len(ru.errs) < 100 {
		ru.errs = append(ru.errs, fmt.Sprintf(format, args...))
	}
}

// Notes are what the pod runner's lifecycle hooks did (a preStop's failover and how long it
// took), oldest first: a test prints them next to what its app saw.
func (ru *Runner) Notes() []string {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	return append([]string(nil), ru.notes...)
}

// notef records a note (at most 100: the first ones tell the story).
func (ru *Runner) notef(format string, args ...any) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if len(ru.notes) < 100 {
		ru.notes = append(ru.notes, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

// loop reconciles every pod on each change, and every 500 ms for readiness.
func (ru *Runner) loop(ctx context.Context) {
	defer close(ru.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ru.kick:
		case <-t.C:
		}
		for _, o := range ru.store.List() {
			ru.sync(ctx, o.(*corev1.Pod))
		}
	}
}

func (ru *Runner) sync(ctx context.Context, pod *corev1.Pod) {
	ru.mu.Lock()
	ps := ru.pods[pod.Name]
	ru.mu.Unlock()
	uid := string(pod.UID)
	switch {
	case pod.DeletionTimestamp != nil:
		if ps != nil && ps.uid == uid && !ps.stopping {
			ps.stopping = true
			go ru.terminate(ctx, pod.DeepCopy(), ps)
		} else if ps == nil || ps.uid != uid {
			ru.finalize(ctx, pod) // nothing of ours runs for it
		}
	case pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "":
		if ps != nil && ps.uid != uid {
			if !ps.exited() {
				return // the old pod's servers are still stopping
			}
			ps = nil
		}
		if ps == nil {
			if ru.opts.Sentinel != nil {
				ru.notef("%s Running as %s %s after its creation", pod.Name, pod.Status.PodIP, time.Since(pod.CreationTimestamp.Time).Round(10*time.Millisecond))
			}
			ps = &podServer{uid: uid, ip: pod.Status.PodIP}
			if err := ru.start(ctx, pod, ps); err != nil {
				ru.errorf("starting %s: %v", pod.Name, err)
				return
			}
			ru.mu.Lock()
			ru.pods[pod.Name] = ps
			ru.mu.Unlock()
		}
		ru.probe(ctx, pod, ps)
	}
}

// procs are the pod's running processes (started ones only).
func (ps *podServer) procs() []*Process {
	var out []*Process
	for _, p := range []*Process{ps.proc, ps.sentinel} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// waitStarted waits for a Sentinel pod's start script to be over, or for ctx.
func (ps *podServer) waitStarted(ctx context.Context) {
	if ps.started == nil {
		return
	}
	select {
	case <-ps.started:
	case <-ctx.Done():
	}
}

// exited says whether every process of the pod has exited (a start script still running counts
// as not exited).
func (ps *podServer) exited() bool {
	if ps.started != nil {
		select {
		case <-ps.started:
		default:
			return false
		}
	}
	for _, p := range ps.procs() {
		select {
		case <-p.Done():
		default:
			return false
		}
	}
	return true
}

// start is the Redis image's entrypoint: the chart's start script, then redis-server.
func (ru *Runner) start(ctx context.Context, pod *corev1.Pod, ps *podServer) error {
	dir := filepath.Join(ru.data, pod.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if ru.opts.Sentinel != nil {
		ru.startSentinelPod(ctx, pod, ps, dir)
		return nil
	}
	if err := rewriteMyIP(filepath.Join(dir, "nodes.conf"), ps.ip); err != nil {
		return err
	}
	host := fmt.Sprintf("%s.%s.%s.svc.%s", pod.Name, ru.opts.Service, pod.Namespace, ru.opts.ClusterDomain)
	conf := []string{
		"bind " + ps.ip,
		"port " + strconv.Itoa(RedisPort),
		"dir " + dir,
		"protected-mode no",
		"daemonize no",
		"save \"\"",
		"appendonly no",
		"cluster-enabled yes",
		"cluster-config-file nodes.conf",
		"cluster-node-timeout " + strconv.Itoa(int(ru.opts.NodeTimeout/time.Millisecond)),
		"cluster-announce-ip " + ps.ip,
		"cluster-announce-hostname " + host,
		"cluster-preferred-endpoint-type ip",
		"cluster-require-full-coverage no",
	}
	conf = append(conf, ru.opts.ExtraConfig...)
	cf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	cmd := ru.rig.Net.Exec("redis-server", cf)
	p, err := startProcess("redis "+pod.Name, filepath.Join(dir, "redis.log"), cmd)
	if err != nil {
		return err
	}
	ps.proc = p
	return nil
}

var myselfLine = regexp.MustCompile(`^(\S+ )([^:\s]*)(:\d+@\d+.*myself.*)$`)

// rewriteMyIP is the Bitnami start script's nodes.conf fix-up: the node's own line gets the
// pod's new IP (the rest of the cluster learns it by gossip).
func rewriteMyIP(path, ip string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if m := myselfLine.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + ip + m[3]
		}
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
}

// probe is the readiness probe (PING, and cluster_state:ok once the node is part of a
// cluster, like the charts' probe) and the kubelet's status write.
func (ru *Runner) probe(ctx context.Context, pod *corev1.Pod, ps *podServer) {
	healthy := ru.healthy(ctx, ps)
	if ru.opts.Sentinel != nil {
		// A kubelet's failureThreshold (3): on a loaded machine a probe times out now and
		// then; every flip is a pod and StatefulSet status write, and a flapping pod kept the
		// StatefulSet controller requeuing ("read version ... is not as new as written") instead
		// of rolling.
		if healthy {
			ps.fails = 0
		} else if ps.fails++; ps.fails < 3 && podReady(pod) && !ps.exited() {
			healthy = true
		}
	}
	want := pod.Annotations[NotReadyAnnotation] != "true" && healthy
	if want == podReady(pod) {
		ps.ready = want
		return
	}
	p := pod.DeepCopy()
	status := corev1.ConditionFalse
	if want {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		setCondition(p, t, status, now)
	}
	for i := range p.Status.ContainerStatuses {
		p.Status.ContainerStatuses[i].Ready = want
	}
	if _, err := ru.rig.Clientset.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		ru.errorf("pod %s status: %v", p.Name, err)
		return
	}
	ps.ready = want
}

func (ru *Runner) healthy(ctx context.Context, ps *podServer) bool {
	if ru.opts.Sentinel != nil {
		return ru.sentinelPodHealthy(ctx, ps)
	}
	select {
	case <-ps.proc.Done():
		return false
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	o := ru.opts.ClientOptions(net.JoinHostPort(ps.ip, strconv.Itoa(RedisPort)))
	o.MaxRetries, o.PoolSize = -1, 1
	c := redis.NewClient(o)
	defer func() { _ = c.Close() }()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return false
	}
	return strings.Contains(info, "cluster_known_nodes:1\r\n") || strings.Contains(info, "cluster_state:ok")
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setCondition(p *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus, now metav1.Time) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			if p.Status.Conditions[i].Status != s {
				p.Status.Conditions[i].Status, p.Status.Conditions[i].LastTransitionTime = s, now
				p.Status.Conditions[i].Reason = ""
			}
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now})
}

// terminate is the kubelet's pod shutdown: preStop, SIGTERM, SIGKILL when the grace period is
// over, then the final removal of the pod.
func (ru *Runner) terminate(ctx context.Context, pod *corev1.Pod, ps *podServer) {
	deadline := time.Now().Add(10 * time.Second)
	if pod.DeletionTimestamp != nil {
		deadline = pod.DeletionTimestamp.Time
	}
	if s, err := strconv.Atoi(pod.Annotations[PreStopAnnotation]); err == nil && s > 0 {
		wait := time.Until(deadline)
		if d := time.Duration(s) * time.Second; d < wait {
			wait = d
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	ps.waitStarted(ctx)
	if ctx.Err() != nil {
		return // the runner stops (Stop ends the processes)
	}
	if err := ru.preStop(ctx, pod, deadline); err != nil {
		ru.errorf("preStop of %s: %v", pod.Name, err)
	}
	// The containers stop together, as a kubelet stops a pod's containers in parallel.
	var wg sync.WaitGroup
	for _, p := range ps.procs() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.StopWithin(max(time.Until(deadline), 100*time.Millisecond))
		}()
	}
	wg.Wait()
	if ru.opts.Sentinel != nil {
		ru.notef("%s stopped %s after its deletion", pod.Name, time.Since(pod.DeletionTimestamp.Add(-graceOf(pod))).Round(10*time.Millisecond))
	}
	ru.finalize(ctx, pod)
}

// graceOf is the pod's deletion grace period (the time from `kubectl delete` to its
// deletionTimestamp).
func graceOf(pod *corev1.Pod) time.Duration {
	if pod.DeletionGracePeriodSeconds == nil {
		return 0
	}
	return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
}

// preStop runs the pod's preStop hooks: the chart's Sentinel handover (always, as the chart
// has it, unless SentinelPods.NoPreStop), or the Cluster handover of PreStopFailover.
func (ru *Runner) preStop(ctx context.Context, pod *corev1.Pod, deadline time.Time) error {
	switch {
	case ru.opts.Sentinel != nil && !ru.opts.Sentinel.NoPreStop:
		// The chart's hooks wait the grace period minus 10 s at most.
		start := time.Now()
		err := ru.sentinelPreStop(ctx, pod, deadline.Add(-10*time.Second))
		ru.notef("preStop of %s done in %s (err %v)", pod.Name, time.Since(start).Round(10*time.Millisecond), err)
		return err
	case ru.opts.Sentinel == nil && ru.opts.PreStopFailover:
		return ru.handOver(ctx, pod.Status.PodIP, deadline.Add(-2*time.Second))
	}
	return nil
}

// handOver is the preStop hook of PreStopFailover: when the pod's server is a master with a
// connected replica, CLUSTER FAILOVER on that replica, then wait (until deadline) for the
// master to report itself a replica.
func (ru *Runner) handOver(ctx context.Context, podIP string, deadline time.Time) error {
	if podIP == "" {
		return nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	addr := net.JoinHostPort(podIP, strconv.Itoa(RedisPort))
	mc := redis.NewClient(ru.opts.ClientOptions(addr))
	defer func() { _ = mc.Close() }()
	role, err := mc.Do(ctx, "ROLE").Slice()
	if err != nil || len(role) < 3 || role[0] != "master" {
		return err
	}
	replicas, _ := role[2].([]any)
	if len(replicas) == 0 {
		return nil
	}
	r, _ := replicas[0].([]any)
	if len(r) < 2 {
		return fmt.Errorf("ROLE replica entry %v", replicas[0])
	}
	rc := redis.NewClient(ru.opts.ClientOptions(net.JoinHostPort(fmt.Sprint(r[0]), fmt.Sprint(r[1]))))
	defer func() { _ = rc.Close() }()
	if err := rc.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		return err
	}
	for ctx.Err() == nil {
		if role, err := mc.Do(ctx, "ROLE").Slice(); err == nil && len(role) > 0 && role[0] == "slave" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ctx.Err()
}

func (ru *Runner) finalize(ctx context.Context, pod *corev1.Pod) {
	err := ru.rig.Clientset.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		ru.errorf("removing pod %s: %v", pod.Name, err)
	}
}

// Addr is a pod's redis address (pod IP:6379), "" when the runner serves no such pod.
func (ru *Runner) Addr(pod string) string {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	if ps := ru.pods[pod]; ps != nil {
		return net.JoinHostPort(ps.ip, strconv.Itoa(RedisPort))
	}
	return ""
}

// ReadyPods returns the Ready, not terminating pods, by name.
func (ru *Runner) ReadyPods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, o := range ru.store.List() {
		p := o.(*corev1.Pod)
		if p.DeletionTimestamp == nil && podReady(p) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return ordinal(out[i].Name) < ordinal(out[j].Name) })
	return out
}

func ordinal(name string) int {
	i := strings.LastIndexByte(name, '-')
	n, _ := strconv.Atoi(name[i+1:])
	return n
}

// WaitReady waits until n pods are Ready.
func (ru *Runner) WaitReady(ctx context.Context, n int, timeout time.Duration) ([]*corev1.Pod, error) {
	var pods []*corev1.Pod
	err := poll(ctx, timeout, fmt.Sprintf("%d Ready pods of %s", n, ru.opts.App), func() (bool, error) {
		pods = ru.ReadyPods()
		return len(pods) == n, nil
	}, ru.diag)
	return pods, err
}

func (ru *Runner) diag() string {
	return ru.rig.Kubectl("get", "pods,endpointslices", "-n", ru.opts.Namespace, "-o", "wide") +
		"\nrunner errors: " + strings.Join(ru.Errors(), "; ") + "\n" + ru.rig.LogTail()
}

// Bootstrap forms the cluster the way the charts' Job does: redis-cli --cluster create over
// the n Ready pods with replicas per master, then waits until every node reports
// cluster_state:ok and knows all n nodes.
func (ru *Runner) Bootstrap(ctx context.Context, n, replicas int) error {
	pods, err := ru.WaitReady(ctx, n, 2*time.Minute)
	if err != nil {
		return err
	}
	args := append([]string(nil), ru.opts.CLIArgs...)
	args = append(args, "--cluster", "create")
	for _, p := range pods {
		args = append(args, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(RedisPort)))
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "ip", append([]string{"netns", "exec", ru.rig.Net.Name, "redis-cli"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return ru.WaitClusterOK(ctx, n, time.Minute)
}

// WaitClusterOK waits until every Ready pod's node says cluster_state:ok and knows n nodes.
func (ru *Runner) WaitClusterOK(ctx context.Context, n int, timeout time.Duration) error {
	want := fmt.Sprintf("cluster_known_nodes:%d\r\n", n)
	return poll(ctx, timeout, "cluster_state:ok on every node", func() (bool, error) {
		pods := ru.ReadyPods()
		if len(pods) < n {
			return false, nil
		}
		for _, p := range pods {
			o := ru.opts.ClientOptions(net.JoinHostPort(p.Status.PodIP, strconv.Itoa(RedisPort)))
			o.MaxRetries = -1
			c := redis.NewClient(o)
			info, err := c.ClusterInfo(ctx).Result()
			_ = c.Close()
			if err != nil {
				return false, err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, want) {
				return false, nil
			}
		}
		return true, nil
	}, ru.diag)
}
