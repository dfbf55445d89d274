package rig

import (
	"context"
	"crypto/sha1" //nolint:gosec // a stable sentinel ID from the pod name, as the Bitnami chart derives it; not security
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// A Bitnami-style Sentinel StatefulSet (the bitnami/redis chart with sentinel.enabled): every
// pod runs a redis-server on 6379 and a `redis-server --sentinel` on 26379 in the pod network.
// The pod runner plays the chart's start scripts (written from what they do, not copied):
//
//   - ask the other pods' sentinels for the master (SENTINEL GET-MASTER-ADDR-BY-NAME); when none
//     answers, pod 0 is the master and the others replicate it;
//   - when the sentinels still name this pod's own address as the master (its old incarnation
//     was the master and the failover has not happened yet), wait for them to elect another
//     one: starting an empty master under the old name would make the sentinels keep it;
//   - redis-server with replica-announce-ip (the pod's DNS name, or its IP) and replicaof the
//     master; the sentinel with announce-ip, `sentinel resolve-hostnames yes`,
//     `sentinel announce-hostnames yes`, a myid derived from the pod name (a restarted sentinel
//     is the same sentinel) and `sentinel monitor <name> <master> 6379 <quorum>`;
//   - once up, SENTINEL RESET on the other sentinels one at a time (the chart's "clean" step):
//     Redis 7.0 sentinels resolve a name once and keep dialling the old IP of a recreated pod.
//
// Names resolve through the rig's CoreDNS only: a second CoreDNS on the host end of the pod
// network's veth, port 53, named in the pod network's own resolv.conf (PodNetwork.SetResolver).

// SentinelPort is where every Sentinel pod's sentinel listens.
const SentinelPort = 26379

// SentinelPods configure the pod runner for Sentinel pods (RunnerOptions.Sentinel).
type SentinelPods struct {
	// MasterName is the monitored master's name (default mymaster).
	MasterName string
	// Quorum (default 2), DownAfter (default 2 s), FailoverTimeout (default 10 s).
	Quorum                     int
	DownAfter, FailoverTimeout time.Duration
	// AnnounceIPs makes replicas and sentinels announce pod IPs instead of pod DNS names
	// (the chart's useHostnames: false).
	AnnounceIPs bool
	// Resolver answers what the pods' DNS answers (the start script waits for its own and the
	// master's names).
	Resolver *net.Resolver
	// SentinelConfig are more sentinel.conf lines (auth, TLS).
	SentinelConfig []string
	// SentinelClientOptions reach a pod's sentinel (nil: plain TCP, no auth).
	SentinelClientOptions func(addr string) *redis.Options
	// NoPreStop leaves out the chart's preStop hooks (sentinelPreStop): a deleted master pod
	// just gets SIGTERM, and the sentinels find out by themselves (a crashed master).
	NoPreStop bool
}

// sentinelGracePeriod is the Sentinel pods' terminationGracePeriodSeconds (the chart's
// sentinel.terminationGracePeriodSeconds default).
const sentinelGracePeriod = 30

func (s *SentinelPods) defaults() {
	if s.MasterName == "" {
		s.MasterName = "mymaster"
	}
	if s.Quorum == 0 {
		s.Quorum = 2
	}
	if s.DownAfter == 0 {
		s.DownAfter = 2 * time.Second
	}
	if s.FailoverTimeout == 0 {
		s.FailoverTimeout = 10 * time.Second
	}
	if s.SentinelClientOptions == nil {
		s.SentinelClientOptions = func(addr string) *redis.Options { return &redis.Options{Addr: addr} }
	}
}

// sentinelClient opens a sentinel client for ip:26379 that does not retry.
func (s *SentinelPods) sentinelClient(ip string) *redis.SentinelClient {
	o := s.SentinelClientOptions(net.JoinHostPort(ip, strconv.Itoa(SentinelPort)))
	o.MaxRetries, o.PoolSize = -1, 1
	o.DialTimeout, o.ReadTimeout = time.Second, time.Second
	return redis.NewSentinelClient(o)
}

func (ru *Runner) podHost(pod string) string {
	return fmt.Sprintf("%s.%s.%s.svc.%s", pod, ru.opts.Service, ru.opts.Namespace, ru.opts.ClusterDomain)
}

// announce is what a pod's redis-server and sentinel announce.
func (ru *Runner) announce(pod, ip string) string {
	if ru.opts.Sentinel.AnnounceIPs {
		return ip
	}
	return ru.podHost(pod)
}

// startSentinelPod runs the start script in the background (it may wait for a failover) and
// closes ps.started when both servers run or it gave up.
func (ru *Runner) startSentinelPod(ctx context.Context, pod *corev1.Pod, ps *podServer, dir string) {
	ps.started = make(chan struct{})
	pod = pod.DeepCopy()
	go func() {
		defer close(ps.started)
		begun := time.Now()
		defer func() {
			ru.notef("start script of %s (%s) over after %s", pod.Name, ps.ip, time.Since(begun).Round(10*time.Millisecond))
		}()
		asked, err := ru.sentinelPodMain(ctx, pod, ps, dir)
		if err != nil {
			if ctx.Err() == nil {
				ru.errorf("starting %s: %v", pod.Name, err)
			}
			return
		}
		if asked {
			// The reset makes the sentinels read the master's INFO at once: done after this
			// replica's sync, they find it there (else they learn of it only at their next
			// INFO, up to 10 s later, and a failover meanwhile would leave it orphaned,
			// replicating the old master).
			_ = poll(ctx, time.Minute, pod.Name+" synced", func() (bool, error) { return ru.replicationUp(ctx, ps.ip), nil }, nil)
			ru.resetOtherSentinels(ctx, pod.Name)
		}
	}()
}

// sentinelPodMain decides the role, waits for the names, writes both configs and starts both
// servers. asked says whether some sentinel named the master (the group existed before).
func (ru *Runner) sentinelPodMain(ctx context.Context, pod *corev1.Pod, ps *podServer, dir string) (asked bool, err error) {
	so := ru.opts.Sentinel
	me := ru.announce(pod.Name, ps.ip)
	master, asked, err := ru.findMaster(ctx, pod.Name, me)
	if err != nil {
		return asked, err
	}
	if !so.AnnounceIPs {
		if err := ru.waitResolves(ctx, ru.podHost(pod.Name), ps.ip); err != nil {
			return asked, err
		}
		if master != me {
			if err := ru.waitResolves(ctx, master, ""); err != nil {
				return asked, err
			}
		}
	}
	conf := []string{
		"bind " + ps.ip, "port " + strconv.Itoa(RedisPort), "dir " + dir, "protected-mode no", "daemonize no",
		`save ""`, "appendonly no", "replica-announce-ip " + me, "replica-announce-port " + strconv.Itoa(RedisPort),
	}
	if master != me {
		conf = append(conf, fmt.Sprintf("replicaof %s %d", master, RedisPort))
	}
	conf = append(conf, ru.opts.ExtraConfig...)
	if ps.proc, err = ru.startConf(pod.Name, dir, "redis", conf); err != nil {
		return asked, err
	}
	sum := sha1.Sum([]byte(pod.Name)) //nolint:gosec // an ID, not a secret
	sconf := []string{
		"bind " + ps.ip, "port " + strconv.Itoa(SentinelPort), "dir " + dir, "protected-mode no", "daemonize no",
		"sentinel myid " + hex.EncodeToString(sum[:]),
		"sentinel resolve-hostnames yes", "sentinel announce-hostnames " + yesNo(!so.AnnounceIPs),
		"sentinel announce-ip " + me, "sentinel announce-port " + strconv.Itoa(SentinelPort),
		fmt.Sprintf("sentinel monitor %s %s %d %d", so.MasterName, master, RedisPort, so.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", so.MasterName, so.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", so.MasterName, so.FailoverTimeout.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", so.MasterName),
	}
	sconf = append(sconf, so.SentinelConfig...)
	if ps.sentinel, err = ru.startConf(pod.Name, dir, "sentinel", sconf, "--sentinel"); err != nil {
		ps.proc.StopWithin(time.Second)
		return asked, err
	}
	return asked, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// startConf writes <dir>/<kind>.conf (regenerated at every start, as the chart's script does)
// and starts redis-server on it in the pod network.
func (ru *Runner) startConf(pod, dir, kind string, conf []string, args ...string) (*Process, error) {
	cf := filepath.Join(dir, kind+".conf")
	if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := ru.rig.Net.Exec("redis-server", append([]string{cf}, args...)...)
	return startProcess(kind+" "+pod, filepath.Join(dir, kind+".log"), cmd)
}

// findMaster is the start script's question to the other pods' sentinels. When they name this
// pod's own address, it waits (up to twice the failover timeout) for them to name another.
func (ru *Runner) findMaster(ctx context.Context, pod, me string) (master string, asked bool, err error) {
	deadline := time.Now().Add(2*ru.opts.Sentinel.FailoverTimeout + ru.opts.Sentinel.DownAfter)
	for {
		master, asked = ru.askSentinels(ctx, pod)
		switch {
		case !asked:
			if ru.opts.Sentinel.AnnounceIPs {
				return ru.firstPodIP(ctx, pod, me)
			}
			return ru.podHost(ru.opts.App + "-0"), false, nil
		case time.Now().After(deadline):
			return master, true, nil
		case master != me && ru.isMaster(ctx, master):
			return master, true, nil
		}
		select {
		case <-ctx.Done():
			return "", asked, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// isMaster: host:6379 answers ROLE as a master. The sentinels name the old master until their
// failover is over; a replica started against it (a deleted master pod's old IP) would wait for
// it forever, unseen by the sentinels, which learn replicas from the master's INFO.
func (ru *Runner) isMaster(ctx context.Context, host string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if net.ParseIP(host) == nil {
		// Through the pods' DNS only, as waitResolves asks it.
		addrs, err := ru.opts.Sentinel.Resolver.LookupHost(ctx, host+".")
		if err != nil || len(addrs) == 0 {
			return false
		}
		host = addrs[0]
	}
	o := ru.opts.ClientOptions(net.JoinHostPort(host, strconv.Itoa(RedisPort)))
	o.MaxRetries, o.PoolSize = -1, 1
	c := redis.NewClient(o)
	defer func() { _ = c.Close() }()
	role, err := c.Do(ctx, "ROLE").Slice()
	return err == nil && len(role) > 0 && role[0] == "master"
}

// firstPodIP is pod 0's IP once it has one (the IP-announcing start script's default master).
func (ru *Runner) firstPodIP(ctx context.Context, pod, me string) (string, bool, error) {
	first := ru.opts.App + "-0"
	if pod == first {
		return me, false, nil
	}
	var ip string
	err := poll(ctx, 2*time.Minute, "an IP for "+first, func() (bool, error) {
		for _, o := range ru.store.List() {
			if p := o.(*corev1.Pod); p.Name == first && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
				ip = p.Status.PodIP
			}
		}
		return ip != "", nil
	}, nil)
	return ip, false, err
}

// askSentinels returns the master the first answering sentinel of another pod names.
func (ru *Runner) askSentinels(ctx context.Context, self string) (string, bool) {
	for _, ip := range ru.otherPodIPs(self) {
		c := ru.opts.Sentinel.sentinelClient(ip)
		addr, err := c.GetMasterAddrByName(ctx, ru.opts.Sentinel.MasterName).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0], true
		}
	}
	return "", false
}

// otherPodIPs are the IPs of the other Running, not terminating pods.
func (ru *Runner) otherPodIPs(self string) []string {
	var out []string
	for _, o := range ru.store.List() {
		p := o.(*corev1.Pod)
		if p.Name != self && p.DeletionTimestamp == nil && p.Status.PodIP != "" {
			out = append(out, p.Status.PodIP)
		}
	}
	return out
}

// waitResolves waits until the pods' DNS answers name (with ip among the answers, when set).
func (ru *Runner) waitResolves(ctx context.Context, name, ip string) error {
	if net.ParseIP(name) != nil {
		return nil
	}
	return poll(ctx, time.Minute, "DNS for "+name, func() (bool, error) {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		addrs, err := ru.opts.Sentinel.Resolver.LookupHost(lctx, name+".")
		if err != nil {
			return false, err
		}
		for _, a := range addrs {
			if ip == "" || a == ip {
				return true, nil
			}
		}
		return false, nil
	}, nil)
}

// resetOtherSentinels sends SENTINEL RESET to the other pods' sentinels one at a time, so they
// resolve the names again and find this pod's servers at its new IP. A reset sentinel forgets
// its peers and replicas and learns them again from hello messages (every 2 s) and the
// master's INFO: the next one is reset only once it knows as many peers as before (at most
// 10 s), and none while a failover is under way (a reset aborts it), so that the group keeps a
// quorum that can elect and fail over throughout, and the pod becomes Ready (the rollout goes on
// to the next pod, maybe the master) only once the group's view is whole again.
func (ru *Runner) resetOtherSentinels(ctx context.Context, self string) {
	// A sentinel that is not up yet (the group still forming) has nothing stale to forget, so
	// errors are ignored, as the chart's script ignores them.
	for _, ip := range ru.otherPodIPs(self) {
		ru.resetSentinel(ctx, ip)
	}
}

func (ru *Runner) resetSentinel(ctx context.Context, ip string) {
	name := ru.opts.Sentinel.MasterName
	c := ru.opts.Sentinel.sentinelClient(ip)
	defer func() { _ = c.Close() }()
	_ = poll(ctx, 10*time.Second, "no failover under way", func() (bool, error) {
		m, err := c.Master(ctx, name).Result()
		return err != nil || !strings.Contains(m["flags"], "failover"), nil
	}, nil)
	peers, err := c.Sentinels(ctx, name).Result()
	if err != nil {
		return
	}
	begun := time.Now()
	if c.Reset(ctx, name).Err() != nil {
		return
	}
	err = poll(ctx, 10*time.Second, "peers known again", func() (bool, error) {
		now, err := c.Sentinels(ctx, name).Result()
		return err == nil && len(now) >= len(peers), nil
	}, nil)
	ru.notef("SENTINEL RESET of %s: %d peers known again after %s (%v)", ip, len(peers), time.Since(begun).Round(10*time.Millisecond), err)
}

// sentinelPodHealthy is the readiness probe: both servers answer, and a replica is in sync.
func (ru *Runner) sentinelPodHealthy(ctx context.Context, ps *podServer) bool {
	select {
	case <-ps.started:
	default:
		return false
	}
	if ps.proc == nil || ps.sentinel == nil {
		return false
	}
	if !ru.replicationUp(ctx, ps.ip) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sc := ru.opts.Sentinel.sentinelClient(ps.ip)
	defer func() { _ = sc.Close() }()
	return sc.Ping(ctx).Err() == nil
}

// replicationUp: the pod's redis-server answers and is a master or a replica whose link to its
// master is up. The readiness probe asks it too, so that a rolling update waits for each
// replica's sync before it takes the next pod (maybe the master) down.
func (ru *Runner) replicationUp(ctx context.Context, ip string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	o := ru.opts.ClientOptions(net.JoinHostPort(ip, strconv.Itoa(RedisPort)))
	o.MaxRetries, o.PoolSize = -1, 1
	c := redis.NewClient(o)
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "replication").Result()
	return err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up"))
}

// sentinelPreStop is what the chart's two preStop hooks do together, bounded by deadline (the
// chart gives them the grace period minus 10 s):
//
//   - the sentinel container's: when this pod's sentinel names this pod as the master, SENTINEL
//     FAILOVER, then wait until it names another one. A planned failover needs no election:
//     without it the remaining sentinels notice the loss only after down-after, and two of them
//     asking for votes at once split the vote and wait twice the failover timeout before the
//     next attempt (seen on the rig: 24 s from `kubectl delete pod` to a new master);
//   - the redis container's: wait while this pod's redis-server is still the master, so that it
//     stops only once the sentinels made it a replica (clients that still write to it get
//     READONLY and ask the sentinels again instead of writing into a server about to vanish).
//
// SENTINEL FAILOVER is asked again while it is refused (NOGOODSLAVE right after a replica's
// restart, before the sentinel has seen it in sync; INPROG): the chart asks once and waits,
// which leaves such a pod to a SIGTERM and the election above.
func (ru *Runner) sentinelPreStop(ctx context.Context, pod *corev1.Pod, deadline time.Time) error {
	ip := pod.Status.PodIP
	if ip == "" {
		return nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	me := ru.announce(pod.Name, ip)
	name := ru.opts.Sentinel.MasterName
	sc := ru.opts.Sentinel.sentinelClient(ip)
	defer func() { _ = sc.Close() }()
	mo := ru.opts.ClientOptions(net.JoinHostPort(ip, strconv.Itoa(RedisPort)))
	mo.MaxRetries, mo.PoolSize = -1, 1
	mc := redis.NewClient(mo)
	defer func() { _ = mc.Close() }()
	namesMe := func() (bool, error) {
		a, err := sc.GetMasterAddrByName(ctx, name).Result()
		if err != nil || len(a) != 2 {
			return false, err
		}
		return a[0] == me, nil
	}
	isMaster := func() bool {
		role, err := mc.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	}
	var lastErr error
	asked, refused := time.Time{}, 0
	for ctx.Err() == nil {
		mine, err := namesMe()
		if err == nil && !mine && !isMaster() {
			return nil
		}
		if mine && time.Since(asked) >= time.Second {
			asked = time.Now()
			if lastErr = sc.Failover(ctx, name).Err(); lastErr == nil {
				ru.notef("preStop of %s: SENTINEL FAILOVER %s (refused %d times before)", pod.Name, name, refused)
			} else {
				refused++
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return fmt.Errorf("SENTINEL FAILOVER: %w", lastErr)
	}
	return ctx.Err()
}

// RedisSentinelOptions describe a Bitnami-style Sentinel StatefulSet on the rig.
type RedisSentinelOptions struct {
	Namespace, Name string
	// Pods (default 3): each a redis-server and a sentinel.
	Pods int
	// Sentinel settings (the Resolver is set by RedisSentinel).
	Sentinel SentinelPods
	// Runner options beyond namespace, app, service and Sentinel.
	Runner RunnerOptions
}

// RedisSentinel is a running Sentinel StatefulSet with its pod runner.
type RedisSentinel struct {
	rig       *Rig
	Namespace string
	Name      string
	// Service is the headless Service (<Name>-headless): ports redis 6379, redis-sentinel 26379.
	Service    string
	MasterName string
	Runner     *Runner
	Pods       int
	// DNS is the pods' CoreDNS (on the pod network's host address, port 53).
	DNS *DNS
}

// RedisSentinel creates the namespace (if needed), the headless Service and the StatefulSet,
// serves its pods (and their DNS) and waits until the group is whole: a master, Pods-1
// replicas linked to it, and every sentinel agreeing and knowing all others.
func (r *Rig) RedisSentinel(ctx context.Context, o RedisSentinelOptions) (*RedisSentinel, error) {
	if o.Pods == 0 {
		o.Pods = 3
	}
	o.Sentinel.defaults()
	rs := &RedisSentinel{rig: r, Namespace: o.Namespace, Name: o.Name, Service: o.Name + "-headless", MasterName: o.Sentinel.MasterName, Pods: o.Pods}
	var err error
	if rs.DNS, err = r.podDNS(); err != nil {
		return nil, err
	}
	o.Sentinel.Resolver = rs.DNS.Resolver()
	if err := r.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metaName(o.Namespace)}); client.IgnoreAlreadyExists(err) != nil {
		return nil, err
	}
	if err := r.WaitNamespace(ctx, o.Namespace); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, SentinelHeadlessService(o.Namespace, rs.Service, o.Name)); err != nil {
		return nil, err
	}
	ro := o.Runner
	ro.Namespace, ro.App, ro.Service = o.Namespace, o.Name, rs.Service
	ro.Sentinel = &o.Sentinel
	if rs.Runner, err = r.RunPods(ro); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, SentinelStatefulSet(o.Namespace, o.Name, rs.Service, int32(o.Pods))); err != nil {
		return nil, err
	}
	if _, err := rs.Runner.WaitReady(ctx, o.Pods, 2*time.Minute); err != nil {
		return nil, err
	}
	return rs, rs.WaitHealthy(ctx, time.Minute)
}

// podDNS starts (once per rig) the CoreDNS the pods resolve through: on the host end of the
// pod network's veth, port 53, and makes it the pod network's resolver.
func (r *Rig) podDNS() (*DNS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.podDNSServer != nil {
		return r.podDNSServer, nil
	}
	d, err := StartDNS(DNSOptions{Kubeconfig: r.Kubeconfig, Listen: net.JoinHostPort(r.Net.HostAddr.String(), "53")})
	if err != nil {
		return nil, fmt.Errorf("rig: the pods' DNS: %w", err)
	}
	if err := r.Net.SetResolver(r.Net.HostAddr.String()); err != nil {
		d.Stop()
		return nil, err
	}
	r.podDNSServer = d
	r.stops = append(r.stops, d.Stop)
	return d, nil
}

// SentinelHeadlessService is the chart's headless Service for Sentinel pods: ports redis and
// redis-sentinel, publishNotReadyAddresses (the pods find each other before they are Ready).
func SentinelHeadlessService(ns, name, app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{AppLabel: app}},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			Selector:                 map[string]string{AppLabel: app},
			PublishNotReadyAddresses: true,
			Ports: []corev1.ServicePort{
				{Name: "tcp-redis", Port: RedisPort},
				{Name: "tcp-sentinel", Port: SentinelPort},
			},
		},
	}
}

// SentinelStatefulSet is the chart's node StatefulSet: containers redis and sentinel.
func SentinelStatefulSet(ns, name, service string, replicas int32) *appsv1.StatefulSet {
	sts := StatefulSet(ns, name, service, replicas)
	sts.Spec.Template.Spec.Containers = []corev1.Container{
		{Name: "redis", Image: "redis:7.0", Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: RedisPort}}},
		{Name: "sentinel", Image: "redis:7.0", Ports: []corev1.ContainerPort{{Name: "redis-sentinel", ContainerPort: SentinelPort}}},
	}
	// The chart's default: its preStops wait up to 10 s less than this for the failover.
	sts.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](sentinelGracePeriod)
	return sts
}

// PodName is the pod an announced host (DNS name or pod IP) belongs to, "" when none.
func (rs *RedisSentinel) PodName(host string) string {
	if net.ParseIP(host) == nil {
		name, _, _ := strings.Cut(host, ".")
		return name
	}
	for _, o := range rs.Runner.store.List() {
		if p := o.(*corev1.Pod); p.Status.PodIP == host && p.DeletionTimestamp == nil {
			return p.Name
		}
	}
	return ""
}

// CurrentMaster asks the sentinels of the running pods (Ready or not: a replica re-syncing
// after a failover is not Ready, its sentinel is up) for the master, and returns its pod and
// the announced host:port, when a majority of all sentinels (Pods) agree.
func (rs *RedisSentinel) CurrentMaster(ctx context.Context) (pod, addr string, err error) {
	votes := map[string]int{}
	for _, ip := range rs.Runner.otherPodIPs("") {
		c := rs.Runner.opts.Sentinel.sentinelClient(ip)
		a, err := c.GetMasterAddrByName(ctx, rs.MasterName).Result()
		_ = c.Close()
		if err == nil && len(a) == 2 {
			votes[net.JoinHostPort(a[0], a[1])]++
		}
	}
	for a, n := range votes {
		if n > rs.Pods/2 {
			host, _, _ := net.SplitHostPort(a)
			return rs.PodName(host), a, nil
		}
	}
	return "", "", fmt.Errorf("rig: no majority of %d sentinels names a master: %v", rs.Pods, votes)
}

// Role is ROLE's first element on a pod's redis-server ("master", "slave").
func (rs *RedisSentinel) Role(ctx context.Context, pod string) (string, error) {
	addr := rs.Runner.Addr(pod)
	if addr == "" {
		return "", fmt.Errorf("rig: no server for pod %s", pod)
	}
	o := rs.Runner.opts.ClientOptions(addr)
	o.MaxRetries = -1
	c := redis.NewClient(o)
	defer func() { _ = c.Close() }()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(role) == 0 {
		return "", errors.New("rig: empty ROLE reply")
	}
	return fmt.Sprint(role[0]), nil
}

// WaitHealthy waits until every pod is Ready, a majority of sentinels names a master whose
// ROLE is master with Pods-1 connected replicas, and every sentinel names that master and
// knows Pods-1 replicas and Pods-1 other sentinels, none of them down.
func (rs *RedisSentinel) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	return poll(ctx, timeout, "a whole sentinel group "+rs.Name, func() (bool, error) {
		pods := rs.Runner.ReadyPods()
		if len(pods) != rs.Pods {
			return false, nil
		}
		master, addr, err := rs.CurrentMaster(ctx)
		if err != nil {
			return false, err
		}
		if ok, err := rs.masterHasReplicas(ctx, master); !ok {
			return false, err
		}
		for _, p := range pods {
			if ok, err := rs.sentinelWhole(ctx, p.Status.PodIP, addr); !ok {
				return false, err
			}
		}
		return true, nil
	}, rs.diag)
}

func (rs *RedisSentinel) masterHasReplicas(ctx context.Context, master string) (bool, error) {
	addr := rs.Runner.Addr(master)
	if addr == "" {
		return false, fmt.Errorf("no server for master pod %q", master)
	}
	c := redis.NewClient(rs.Runner.opts.ClientOptions(addr))
	defer func() { _ = c.Close() }()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return false, err
	}
	return strings.Contains(info, "role:master") && strings.Contains(info, fmt.Sprintf("connected_slaves:%d\r\n", rs.Pods-1)), nil
}

// sentinelWhole: the sentinel at ip names addr and sees every replica and peer up.
func (rs *RedisSentinel) sentinelWhole(ctx context.Context, ip, addr string) (bool, error) {
	c := rs.Runner.opts.Sentinel.sentinelClient(ip)
	defer func() { _ = c.Close() }()
	a, err := c.GetMasterAddrByName(ctx, rs.MasterName).Result()
	if err != nil || len(a) != 2 || net.JoinHostPort(a[0], a[1]) != addr {
		return false, err
	}
	for _, list := range []func(context.Context, string) *redis.MapStringStringSliceCmd{c.Replicas, c.Sentinels} {
		entries, err := list(ctx, rs.MasterName).Result()
		if err != nil {
			return false, err
		}
		up := 0
		for _, e := range entries {
			if !strings.Contains(e["flags"], "down") && !strings.Contains(e["flags"], "disconnected") {
				up++
			}
		}
		if up != rs.Pods-1 || len(entries) != rs.Pods-1 {
			return false, nil
		}
	}
	return true, nil
}

func (rs *RedisSentinel) diag() string {
	var b strings.Builder
	for _, p := range rs.Runner.ReadyPods() {
		c := rs.Runner.opts.Sentinel.sentinelClient(p.Status.PodIP)
		a, err := c.GetMasterAddrByName(context.Background(), rs.MasterName).Result()
		r, _ := c.Replicas(context.Background(), rs.MasterName).Result()
		s, _ := c.Sentinels(context.Background(), rs.MasterName).Result()
		_ = c.Close()
		fmt.Fprintf(&b, "sentinel %s (%s): master %v %v; replicas:", p.Name, p.Status.PodIP, a, err)
		for _, e := range r {
			fmt.Fprintf(&b, " %s:%s/%s[%s]", e["name"], e["ip"], e["flags"], e["master-link-status"])
		}
		b.WriteString("; sentinels:")
		for _, e := range s {
			fmt.Fprintf(&b, " %s/%s", e["ip"], e["flags"])
		}
		b.WriteString("\n")
	}
	return b.String() + rs.Runner.diag()
}

// DeletePod is `kubectl delete pod`: a graceful deletion; the StatefulSet controller makes a
// new pod of the same name, which gets a new IP. It returns the deleted pod's UID.
func (rs *RedisSentinel) DeletePod(ctx context.Context, pod string) (types.UID, error) {
	var p corev1.Pod
	if err := rs.rig.Client.Get(ctx, client.ObjectKey{Namespace: rs.Namespace, Name: pod}, &p); err != nil {
		return "", err
	}
	return p.UID, rs.rig.Client.Delete(ctx, &p, client.Preconditions{UID: &p.UID})
}

// WaitRecreated waits until pod exists again with a UID other than old and is Ready; it
// returns the new pod.
func (rs *RedisSentinel) WaitRecreated(ctx context.Context, pod string, old types.UID, timeout time.Duration) (*corev1.Pod, error) {
	var out *corev1.Pod
	err := poll(ctx, timeout, "pod "+pod+" recreated and Ready", func() (bool, error) {
		for _, p := range rs.Runner.ReadyPods() {
			if p.Name == pod && p.UID != old {
				out = p
				return true, nil
			}
		}
		return false, nil
	}, rs.diag)
	return out, err
}

// RolloutRestart is `kubectl rollout restart statefulset/<name>`.
func (rs *RedisSentinel) RolloutRestart(ctx context.Context) error {
	return rolloutRestart(ctx, rs.rig.Client, rs.Namespace, rs.Name)
}

// WaitRolledOut waits until every pod runs the update revision and is Ready, and the group
// is whole again.
func (rs *RedisSentinel) WaitRolledOut(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	if err := waitStatefulSetRolledOut(ctx, rs.rig.Client, rs.Namespace, rs.Name, rs.Pods, timeout, rs.diag); err != nil {
		return err
	}
	return rs.WaitHealthy(ctx, max(timeout-time.Since(start), 10*time.Second))
}

func rolloutRestart(ctx context.Context, c client.Client, ns, name string) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	sts := &appsv1.StatefulSet{}
	sts.Namespace, sts.Name = ns, name
	return c.Patch(ctx, sts, client.RawPatch(types.StrategicMergePatchType, []byte(patch)))
}

func waitStatefulSetRolledOut(ctx context.Context, c client.Client, ns, name string, pods int, timeout time.Duration, diag func() string) error {
	return poll(ctx, timeout, "rollout of statefulset/"+name, func() (bool, error) {
		var sts appsv1.StatefulSet
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sts); err != nil {
			return false, err
		}
		s := sts.Status
		return s.ObservedGeneration == sts.Generation && s.UpdateRevision != "" && s.CurrentRevision == s.UpdateRevision &&
			s.UpdatedReplicas == int32(pods) && s.ReadyReplicas == int32(pods), nil
	}, diag)
}
