package v1_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

// newSentinelRC returns a valid Sentinel-mode RedisConnection with a unique name.
func newSentinelRC() *rconnv1.RedisConnection {
	rc := newRC()
	rc.Spec.Mode = rconnv1.ModeSentinel
	rc.Spec.RootNodes = nil
	rc.Spec.Sentinel = &rconnv1.SentinelSpec{MasterName: "mymaster", RootNodes: []rconnv1.SentinelNode{
		{Host: "redis-0.redis-headless.default.svc", Port: 26379}, {Host: "redis-1.redis-headless.default.svc"},
	}}
	return rc
}

func bitnamiServices(ports ...intstr.IntOrString) *rconnv1.NodeAddressMap {
	return &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "redis"}}, AddressType: rconnv1.AddressTypePodDNS, Ports: ports,
	}}}
}

var _ = Describe("Sentinel mode validation", func() {
	It("defaults the sentinel port to 26379", func() {
		rc := newSentinelRC()
		Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		got := &rconnv1.RedisConnection{}
		Expect(k8sClient.Get(ctx, keyOf(rc), got)).To(Succeed())
		Expect(got.Spec.Sentinel.RootNodes[1].Port).To(Equal(int32(26379)))
		Expect(got.Spec.RootNodes).To(BeEmpty())
	})

	DescribeTable("accepts",
		func(mutate func(*rconnv1.RedisConnection)) {
			rc := newSentinelRC()
			mutate(rc)
			Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		},
		Entry("the minimal Sentinel connection", func(*rconnv1.RedisConnection) {}),
		Entry("useReplicas, a database, sentinel ACL and TLS apart from the data nodes'", func(rc *rconnv1.RedisConnection) {
			rc.Spec.UseReplicas = true
			rc.Spec.Defaults = &rconnv1.NodeDefaults{Database: ptr(int32(2)),
				ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "redis-data"}},
				TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "redis-tls"}}}
			rc.Spec.Sentinel.ACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "redis-sentinel"}, UsernameKey: "user"}
			rc.Spec.Sentinel.TLS = &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "sentinel-tls"}, ServerName: "sentinel.example.com"}
		}),
		Entry("IPv4 and IPv6 sentinel hosts, the same host on two ports", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Sentinel.RootNodes = []rconnv1.SentinelNode{{Host: "127.0.0.1", Port: 26379}, {Host: "127.0.0.1", Port: 26380}, {Host: "fd00::1"}}
		}),
		Entry("fromServices mapping the data and the sentinel port of one pod", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = bitnamiServices(intstr.FromString("tcp-redis"), intstr.FromInt32(26379))
		}),
	)

	DescribeTable("rejects what can never work, with a readable message",
		func(mutate func(*rconnv1.RedisConnection), message string) {
			rc := newSentinelRC()
			mutate(rc)
			err := k8sClient.Create(ctx, rc)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("Sentinel mode without spec.sentinel", func(rc *rconnv1.RedisConnection) { rc.Spec.Sentinel = nil },
			"spec.sentinel is required in Sentinel mode and only allowed there"),
		Entry("spec.sentinel in Cluster mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeCluster
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379"}}
		}, "spec.sentinel is required in Sentinel mode and only allowed there"),
		Entry("spec.sentinel in Standalone mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379"}}
		}, "spec.sentinel is required in Sentinel mode and only allowed there"),
		Entry("no masterName", func(rc *rconnv1.RedisConnection) { rc.Spec.Sentinel.MasterName = "" },
			"spec.sentinel.masterName"),
		Entry("a masterName with a space", func(rc *rconnv1.RedisConnection) { rc.Spec.Sentinel.MasterName = "my master" },
			"masterName must be letters, digits"),
		Entry("no sentinels", func(rc *rconnv1.RedisConnection) { rc.Spec.Sentinel.RootNodes = nil },
			"spec.sentinel.rootNodes"),
		Entry("the same sentinel twice, once with the default port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Sentinel.RootNodes = []rconnv1.SentinelNode{{Host: "Sentinel-0", Port: 26379}, {Host: "sentinel-0"}}
		}, "sentinel rootNodes must not list the same host and port twice"),
		Entry("a sentinel host with a port inside", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Sentinel.RootNodes = []rconnv1.SentinelNode{{Host: "sentinel-0:26379"}}
		}, "host must be a DNS name or an IP address"),
		Entry("spec.rootNodes in Sentinel mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379"}}
		}, "Sentinel mode takes no spec.rootNodes"),
		Entry("Cluster mode without rootNodes", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode, rc.Spec.Sentinel = rconnv1.ModeCluster, nil
		}, "spec.rootNodes is required in Cluster and Standalone modes"),
		Entry("socketPath in Sentinel mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Output = &rconnv1.Output{SocketPath: "/var/run/redis/redis.sock"}
		}, "output.socketPath is for Standalone mode only"),
		Entry("minimizeConnections in Sentinel mode", func(rc *rconnv1.RedisConnection) { rc.Spec.MinimizeConnections = true },
			"minimizeConnections is only valid in Cluster mode"),
		Entry("sentinel TLS options while disabled", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Sentinel.TLS = &rconnv1.TLSConfig{ServerName: "sentinel"}
		}, "secretRef, serverName and insecureSkipVerify need enabled: true"),
		Entry("output Secret that would overwrite the sentinel ACL Secret", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Sentinel.ACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: rc.Name}}
		}, "must differ from spec.sentinel.acl.secretRef"),
		Entry("output Secret that would overwrite the sentinel TLS Secret", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Output = &rconnv1.Output{SecretName: "out"}
			rc.Spec.Sentinel.TLS = &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "out"}}
		}, "must differ from spec.sentinel.tls.secretRef"),
		Entry("fromServices with port and ports", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = bitnamiServices(intstr.FromInt32(26379))
			rc.Spec.NodeAddressMap.FromServices[0].Port = ptr(intstr.FromInt32(6379))
		}, "set port or ports, not both"),
		Entry("fromServices ports with port 0", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = bitnamiServices(intstr.FromInt32(0))
		}, "ports must be port numbers from 1 to 65535"),
	)
})
