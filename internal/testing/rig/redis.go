package rig

import (
	"context"
	"fmt"
	"net"
	"strconv"
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
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339Nano))
	sts := &appsv1.StatefulSet{}
	sts.Namespace, sts.Name = rc.Namespace, rc.Name
	return rc.rig.Client.Patch(ctx, sts, client.RawPatch(types.StrategicMergePatchType, []byte(patch)))
}

// WaitRolledOut waits until the StatefulSet's pods all run the update revision and are Ready,
// and the cluster is whole again.
func (rc *RedisCluster) WaitRolledOut(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	err := poll(ctx, timeout, "rollout of statefulset/"+rc.Name, func() (bool, error) {
		var sts appsv1.StatefulSet
		if err := rc.rig.Client.Get(ctx, client.ObjectKey{Namespace: rc.Namespace, Name: rc.Name}, &sts); err != nil {
			return false, err
		}
		s := sts.Status
		return s.ObservedGeneration == sts.Generation && s.UpdateRevision != "" && s.CurrentRevision == s.UpdateRevision &&
			s.UpdatedReplicas == int32(rc.Pods) && s.ReadyReplicas == int32(rc.Pods), nil
	}, rc.Runner.diag)
	if err != nil {
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
