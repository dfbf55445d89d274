package rig

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RedisClusterOptions describe a Redis Cluster StatefulSet on the rig.
type RedisClusterOptions struct {
	Namespace, Name string
	// Masters and ReplicasPerMaster (default 3 and 1: six pods).
	Masters, ReplicasPerMaster int
	// PublishNotReadyAddresses on the headless Service (the Bitnami chart sets it).
	PublishNotReadyAddresses bool
	// Runner options beyond namespace, app and service.
	Runner RunnerOptions
}

// RedisCluster is a running Redis Cluster StatefulSet with its pod runner.
type RedisCluster struct {
	rig       *Rig
	Namespace string
	Name      string
	// Service is the headless Service (<Name>-headless).
	Service string
	Runner  *Runner
	Pods    int
}

// RedisCluster creates the namespace (if needed), the headless Service and the StatefulSet,
// serves its pods and forms the cluster.
func (r *Rig) RedisCluster(ctx context.Context, o RedisClusterOptions) (*RedisCluster, error) {
	if o.Masters == 0 {
		o.Masters = 3
	}
	if o.ReplicasPerMaster == 0 {
		o.ReplicasPerMaster = 1
	}
	n := o.Masters * (1 + o.ReplicasPerMaster)
	rc := &RedisCluster{rig: r, Namespace: o.Namespace, Name: o.Name, Service: o.Name + "-headless", Pods: n}
	if err := r.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metaName(o.Namespace)}); client.IgnoreAlreadyExists(err) != nil {
		return nil, err
	}
	if err := r.WaitNamespace(ctx, o.Namespace); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, HeadlessService(o.Namespace, rc.Service, o.Name, o.PublishNotReadyAddresses)); err != nil {
		return nil, err
	}
	ro := o.Runner
	ro.Namespace, ro.App, ro.Service = o.Namespace, o.Name, rc.Service
	var err error
	if rc.Runner, err = r.RunPods(ro); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, StatefulSet(o.Namespace, o.Name, rc.Service, int32(n))); err != nil {
		return nil, err
	}
	if err := rc.Runner.Bootstrap(ctx, n, o.ReplicasPerMaster); err != nil {
		return nil, err
	}
	return rc, nil
}

// RolloutRestart does what `kubectl rollout restart statefulset/<name>` does: a new
// restartedAt annotation on the pod template.
func (rc *RedisCluster) RolloutRestart(ctx context.Context) error {
	return rolloutRestart(ctx, rc.rig.Client, rc.Namespace, rc.Name)
}

// WaitRolledOut waits until the StatefulSet's pods all run the update revision and are Ready,
// and the cluster is whole again.
func (rc *RedisCluster) WaitRolledOut(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	if err := waitStatefulSetRolledOut(ctx, rc.rig.Client, rc.Namespace, rc.Name, rc.Pods, timeout, rc.Runner.diag); err != nil {
		return err
	}
	return rc.Runner.WaitClusterOK(ctx, rc.Pods, max(timeout-time.Since(start), 10*time.Second))
}

// NodeIDs returns CLUSTER MYID of every Ready pod, by pod name.
func (rc *RedisCluster) NodeIDs(ctx context.Context, t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range rc.Runner.ReadyPods() {
		o := rc.Runner.opts.ClientOptions(net.JoinHostPort(p.Status.PodIP, strconv.Itoa(RedisPort)))
		c := redis.NewClient(o)
		id, err := c.ClusterMyID(ctx).Result()
		_ = c.Close()
		if err != nil {
			t.Fatalf("CLUSTER MYID on %s: %v", p.Name, err)
		}
		out[p.Name] = id
	}
	return out
}

// CLI runs redis-cli inside the pod network with the runner's CLIArgs first. A --cluster
// command refused at its initial check because gossip has not converged yet ("Nodes don't agree
// about configuration": nothing was changed) is tried again, up to 10 times a second apart.
func (rc *RedisCluster) CLI(ctx context.Context, args ...string) (string, error) {
	for i := 0; ; i++ {
		out, err := rc.cli(ctx, args...)
		if err == nil || i == 9 || !strings.Contains(out, "don't agree about configuration") {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

func (rc *RedisCluster) cli(ctx context.Context, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := append(append([]string{"netns", "exec", rc.rig.Net.Name, "redis-cli"}, rc.Runner.opts.CLIArgs...), args...)
	cmd := exec.CommandContext(cctx, "ip", full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("redis-cli %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Scale sets the StatefulSet's replicas (kubectl scale).
func (rc *RedisCluster) Scale(ctx context.Context, n int) error {
	sts := &appsv1.StatefulSet{}
	sts.Namespace, sts.Name = rc.Namespace, rc.Name
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	return rc.rig.Client.Patch(ctx, sts, client.RawPatch(types.MergePatchType, []byte(patch)))
}

func (rc *RedisCluster) podAddr(ctx context.Context, pod string) (string, error) {
	var p corev1.Pod
	if err := rc.rig.Client.Get(ctx, client.ObjectKey{Namespace: rc.Namespace, Name: pod}, &p); err != nil {
		return "", err
	}
	return net.JoinHostPort(p.Status.PodIP, strconv.Itoa(RedisPort)), nil
}

func (rc *RedisCluster) podName(i int) string { return fmt.Sprintf("%s-%d", rc.Name, i) }

// AddShard scales the StatefulSet out by two pods and makes them a new shard the way an
// operator does by hand: redis-cli --cluster add-node (the master, then the replica, which
// then gets CLUSTER REPLICATE) and a reshard of slots slots from the existing masters to the
// new one. It returns the new master's pod name.
func (rc *RedisCluster) AddShard(ctx context.Context, slots int) (string, error) {
	n := rc.Pods
	if err := rc.Scale(ctx, n+2); err != nil {
		return "", err
	}
	if _, err := rc.Runner.WaitReady(ctx, n+2, 2*time.Minute); err != nil {
		return "", err
	}
	seed, err := rc.podAddr(ctx, rc.podName(0))
	if err != nil {
		return "", err
	}
	master, replica := rc.podName(n), rc.podName(n+1)
	ma, err := rc.podAddr(ctx, master)
	if err != nil {
		return "", err
	}
	ra, err := rc.podAddr(ctx, replica)
	if err != nil {
		return "", err
	}
	if _, err := rc.CLI(ctx, "--cluster", "add-node", ma, seed); err != nil {
		return "", err
	}
	id, err := rc.nodeID(ctx, ma)
	if err != nil {
		return "", err
	}
	// The replica's add-node needs the seed to know the new master (the MEET handshake).
	if err := poll(ctx, time.Minute, "the seed knowing "+master, func() (bool, error) {
		c := redis.NewClient(rc.Runner.opts.ClientOptions(seed))
		defer func() { _ = c.Close() }()
		nodes, err := c.ClusterNodes(ctx).Result()
		return err == nil && strings.Contains(nodes, id) && !strings.Contains(nodes, "handshake"), err
	}, rc.Runner.diag); err != nil {
		return "", err
	}
	// The replica joins empty, then replicates once it knows the new master itself:
	// redis-cli's add-node --cluster-slave sends CLUSTER REPLICATE as soon as the cluster agrees,
	// which can be before gossip has told the new node about the master ("ERR Unknown node",
	// seen in make test).
	if _, err := rc.CLI(ctx, "--cluster", "add-node", ra, seed); err != nil {
		return "", err
	}
	rcl := redis.NewClient(rc.Runner.opts.ClientOptions(ra))
	defer func() { _ = rcl.Close() }()
	if err := poll(ctx, time.Minute, replica+" replicating "+master, func() (bool, error) {
		err := rcl.ClusterReplicate(ctx, id).Err()
		return err == nil, err
	}, rc.Runner.diag); err != nil {
		return "", err
	}
	rc.Pods = n + 2
	if err := rc.Runner.WaitClusterOK(ctx, n+2, time.Minute); err != nil {
		return "", err
	}
	if _, err := rc.CLI(ctx, "--cluster", "reshard", seed, "--cluster-from", "all", "--cluster-to", id,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes"); err != nil {
		return "", err
	}
	return master, rc.Runner.WaitClusterOK(ctx, n+2, time.Minute)
}

// RemoveShard undoes AddShard: the last shard's slots go back to the first master, both of its
// nodes leave the cluster (redis-cli --cluster del-node, which also shuts them down), and the
// StatefulSet scales in by two.
func (rc *RedisCluster) RemoveShard(ctx context.Context) error {
	n := rc.Pods
	master, replica := rc.podName(n-2), rc.podName(n-1)
	seed, err := rc.podAddr(ctx, rc.podName(0))
	if err != nil {
		return err
	}
	ma, err := rc.podAddr(ctx, master)
	if err != nil {
		return err
	}
	ra, err := rc.podAddr(ctx, replica)
	if err != nil {
		return err
	}
	mid, err := rc.nodeID(ctx, ma)
	if err != nil {
		return err
	}
	rid, err := rc.nodeID(ctx, ra)
	if err != nil {
		return err
	}
	// The slots go to whichever node is a master among the first shards' pods.
	to, err := rc.firstMasterID(ctx, n-2)
	if err != nil {
		return err
	}
	if _, err := rc.CLI(ctx, "--cluster", "reshard", seed, "--cluster-from", mid, "--cluster-to", to,
		"--cluster-slots", "16384", "--cluster-yes"); err != nil {
		return err
	}
	for _, id := range []string{rid, mid} {
		if _, err := rc.CLI(ctx, "--cluster", "del-node", seed, id); err != nil {
			return err
		}
	}
	if err := rc.Scale(ctx, n-2); err != nil {
		return err
	}
	rc.Pods = n - 2
	return rc.Runner.WaitClusterOK(ctx, n-2, 2*time.Minute)
}

func (rc *RedisCluster) nodeID(ctx context.Context, addr string) (string, error) {
	c := redis.NewClient(rc.Runner.opts.ClientOptions(addr))
	defer func() { _ = c.Close() }()
	return c.ClusterMyID(ctx).Result()
}

// firstMasterID returns the node ID of a master among pods 0..n-1.
func (rc *RedisCluster) firstMasterID(ctx context.Context, n int) (string, error) {
	for i := 0; i < n; i++ {
		addr, err := rc.podAddr(ctx, rc.podName(i))
		if err != nil {
			return "", err
		}
		c := redis.NewClient(rc.Runner.opts.ClientOptions(addr))
		role, err := c.Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			id, err := c.ClusterMyID(ctx).Result()
			_ = c.Close()
			return id, err
		}
		_ = c.Close()
	}
	return "", fmt.Errorf("no master among the first %d pods", n)
}
