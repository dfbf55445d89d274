package v1_test

import (
	"fmt"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
)

var seq atomic.Int64

// newRC returns a valid RedisConnection with a unique name for mutation by a test.
func newRC() *rconnv1.RedisConnection {
	return &rconnv1.RedisConnection{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rc-%d", seq.Add(1)), Namespace: "default"},
		Spec: rconnv1.RedisConnectionSpec{
			RootNodes: []rconnv1.RootNode{{URL: "redis://redis-0.redis.default.svc:6379"}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

var _ = Describe("the RedisConnection CRD", func() {
	It("installs with the short name, status subresource and printer columns", func() {
		out, err := kubectl("api-resources", "--api-group=rconn.dev", "-o", "wide").CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(MatchRegexp(`redisconnections\s+rconn\s+rconn.dev/v1\s+true\s+RedisConnection`))
		rc := newRC()
		Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		rc.Status.ObservedGeneration = 1
		rc.Status.ShardCount = 3
		Expect(k8sClient.Status().Update(ctx, rc)).To(Succeed())
		got := &rconnv1.RedisConnection{}
		Expect(k8sClient.Get(ctx, keyOf(rc), got)).To(Succeed())
		Expect(got.Status.ShardCount).To(Equal(int32(3)))
		Expect(got.Generation).To(Equal(int64(1)), "a status write must not bump the generation")
	})

	It("applies defaults", func() {
		rc := newRC()
		rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "creds"}}}
		rc.Spec.ReconnectStrategy = &rconnv1.ReconnectStrategy{}
		Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		got := &rconnv1.RedisConnection{}
		Expect(k8sClient.Get(ctx, keyOf(rc), got)).To(Succeed())
		Expect(got.Spec.Mode).To(Equal(rconnv1.ModeCluster))
		Expect(got.Spec.MaxCommandRedirections).To(Equal(ptr(int32(16))))
		Expect(got.Spec.HealthCheck).NotTo(BeNil())
		Expect(got.Spec.HealthCheck.Interval.Duration.String()).To(Equal("30s"))
		Expect(got.Spec.HealthCheck.Timeout.Duration.String()).To(Equal("2s"))
		Expect(got.Spec.Defaults.ConnectTimeout.Duration.String()).To(Equal("5s"))
		Expect(got.Spec.Defaults.ACL.PasswordKey).To(Equal("password"))
		Expect(got.Spec.Defaults.ACL.UsernameKey).To(BeEmpty())
		Expect(got.Spec.ReconnectStrategy.Type).To(Equal(rconnv1.ReconnectExponentialBackoff))
	})

	DescribeTable("accepts valid input",
		func(mutate func(*rconnv1.RedisConnection)) {
			rc := newRC()
			mutate(rc)
			Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		},
		Entry("url with IPv4, port and db 0", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://127.0.0.1:7000/0"}}
		}),
		Entry("url with IPv6 literal", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://[::1]:6379"}}
		}),
		Entry("host and port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "redis-0.redis", Port: 6380}, {Host: "10.0.0.7"}}
		}),
		Entry("rediss with TLS enabled", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true,
				SecretRef: &rconnv1.LocalSecretReference{Name: "tls"}, ServerName: "redis.example.com"}}
		}),
		Entry("standalone with a database", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379/3"}}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{Database: ptr(int32(3))}
		}),
		Entry("static map with IPv4, IPv6 and names", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{
				{Announced: "10.0.0.1:6379", Reachable: "redis-0.example.com:30001"},
				{Announced: "[fd00::1]:6379", Reachable: "[::1]:7000"},
			}}
		}),
		Entry("scripts and a function library", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Scripts = []rconnv1.LuaScript{{Name: "incr_by", Lua: "return redis.call('INCRBY', KEYS[1], ARGV[1])", NumberOfKeys: 1}}
			rc.Spec.FunctionLibraries = []rconnv1.FunctionLibrary{{Name: "mylib", Code: "#!lua name=mylib\nredis.register_function('f', function(k, a) return 1 end)",
				Functions: []rconnv1.LibraryFunction{{Name: "f"}}}}
		}),
		Entry("standalone with a Unix socket for apps", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.Output = &rconnv1.Output{SocketPath: "/var/run/redis/redis.sock"}
		}),
		Entry("fixed delay reconnect", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ReconnectStrategy = &rconnv1.ReconnectStrategy{Type: rconnv1.ReconnectFixedDelay, Delay: &metav1.Duration{Duration: 500e6}}
		}),
		Entry("IPv6 root node in url form, the form the host rule points to", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://[::1]:6379"}, {URL: "redis://[fd00::2]"}}
		}),
		Entry("three distinct root nodes mixing url and host forms", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis-0:6379"}, {Host: "redis-0", Port: 6380}, {Host: "redis-1"}}
		}),
		Entry("the same host on two ports", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "10.0.0.7", Port: 7000}, {Host: "10.0.0.7", Port: 7001}}
		}),
		Entry("Secret keys with dots, dashes and underscores", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "app.creds-1"},
				UsernameKey: "redis_user.name", PasswordKey: ".password-1"}}
		}),
		Entry("fromServices with matchLabels, a named port and a numbered port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{
				{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}, AddressType: rconnv1.AddressTypePodDNS, Port: ptr(intstr.FromString("redis"))},
				{Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}},
					AddressType: rconnv1.AddressTypeClusterIP, Port: ptr(intstr.FromInt32(6379))},
			}}
		}),
	)

	DescribeTable("rejects bad input with a readable message",
		func(mutate func(*rconnv1.RedisConnection), message string) {
			rc := newRC()
			mutate(rc)
			err := k8sClient.Create(ctx, rc)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("no root nodes", func(rc *rconnv1.RedisConnection) { rc.Spec.RootNodes = nil },
			"spec.rootNodes"),
		Entry("unknown url scheme", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "http://redis:6379"}}
		}, "url must start with redis:// or rediss://"),
		Entry("password in url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://alice:s3cret@redis:6379"}}
		}, "url must not contain a username or password"),
		Entry("password-only url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://:s3cret@redis:6379"}}
		}, "url must not contain a username or password"),
		Entry("username in url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://alice@redis:6379"}}
		}, "url must not contain a username or password"),
		Entry("url without a host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://"}}
		}, "with a host"),
		Entry("url with a port and no host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://:6379"}}
		}, "with a host"),
		Entry("maxCommandRedirections 0", func(rc *rconnv1.RedisConnection) {
			zero := int32(0)
			rc.Spec.MaxCommandRedirections = &zero
		}, "maxCommandRedirections"),
		Entry("port out of range in url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:70000"}}
		}, "url must look like redis[s]://host[:port][/db-number]"),
		Entry("port 0 in url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:0"}}
		}, "url must look like"),
		Entry("query in url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379/0?timeout=1"}}
		}, "no query or fragment"),
		Entry("non-numeric db in url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379/zero"}}
		}, "url must look like"),
		Entry("url and host together", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379", Host: "redis"}}
		}, "set exactly one of url or host"),
		Entry("neither url nor host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{}}
		}, "set exactly one of url or host"),
		Entry("port without host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis", Port: 6379}}
		}, "port goes with host"),
		Entry("bad host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "redis server"}}
		}, "host must be a DNS name or an IP address"),
		Entry("useReplicas in Standalone mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.UseReplicas = true
		}, "useReplicas is only valid in Cluster and Sentinel modes"),
		Entry("minimizeConnections in Standalone mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.MinimizeConnections = true
		}, "minimizeConnections is only valid in Cluster mode"),
		Entry("a script name that is not an identifier", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Scripts = []rconnv1.LuaScript{{Name: "incr-by", Lua: "return 1"}}
		}, "script name must be letters, digits and '_'"),
		Entry("a script over 16 KiB", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Scripts = []rconnv1.LuaScript{{Name: "big", Lua: strings.Repeat("-", 16385)}}
		}, "spec.scripts[0].lua: Too long"),
		Entry("two scripts of one name", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Scripts = []rconnv1.LuaScript{{Name: "a", Lua: "return 1"}, {Name: "a", Lua: "return 2"}}
		}, "Duplicate value"),
		Entry("library code naming another library", func(rc *rconnv1.RedisConnection) {
			rc.Spec.FunctionLibraries = []rconnv1.FunctionLibrary{{Name: "mylib", Code: "#!lua name=other\n",
				Functions: []rconnv1.LibraryFunction{{Name: "f"}}}}
		}, "code must start with the line '#!lua name=<name>'"),
		Entry("socketPath in Cluster mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Output = &rconnv1.Output{SocketPath: "/var/run/redis/redis.sock"}
		}, "output.socketPath is for Standalone mode only"),
		Entry("socketPath with TLS", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}
			rc.Spec.Output = &rconnv1.Output{SocketPath: "/var/run/redis/redis.sock"}
		}, "output.socketPath does not go with TLS"),
		Entry("relative socketPath", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.Output = &rconnv1.Output{SocketPath: "run/redis.sock"}
		}, "socketPath must be an absolute file path"),
		Entry("socketPath with '..'", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.Output = &rconnv1.Output{SocketPath: "/run/../etc/redis.sock"}
		}, "socketPath must be a clean path"),
		Entry("socketPath longer than a Unix socket address", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.Output = &rconnv1.Output{SocketPath: "/" + strings.Repeat("s", 107)}
		}, "spec.output.socketPath: Too long"),
		Entry("Standalone with two root nodes", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Mode = rconnv1.ModeStandalone
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "a"}, {Host: "b"}}
		}, "Standalone mode takes exactly one root node"),
		Entry("database 2 in Cluster mode", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{Database: ptr(int32(2))}
		}, "Cluster mode only has database 0"),
		Entry("db number in a Cluster root node url", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis:6379/5"}}
		}, "remove the /db-number"),
		Entry("rediss without TLS", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
		}, "rootNodes url schemes must match spec.defaults.tls.enabled"),
		Entry("redis:// with TLS", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}
		}, "rootNodes url schemes must match spec.defaults.tls.enabled"),
		Entry("TLS options while disabled", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{ServerName: "redis.example.com"}}
		}, "secretRef, serverName and insecureSkipVerify need enabled: true"),
		Entry("serverName with insecureSkipVerify", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, ServerName: "a.example", InsecureSkipVerify: true}}
		}, "serverName has no effect with insecureSkipVerify"),
		Entry("empty Secret name", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{}}
		}, "spec.defaults.acl.secretRef.name"),
		Entry("client name with a space", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ClientName: "my app"}
		}, "clientName must be printable ASCII without spaces"),
		Entry("connect timeout not a duration", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ConnectTimeout: &metav1.Duration{Duration: 0}}
		}, "connectTimeout must be a duration such as 5s"),
		Entry("static map key without a port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{
				{Announced: "10.0.0.1", Reachable: "redis-0.example.com:30001"}}}
		}, "must be host:port"),
		Entry("static map key with port 0", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{
				{Announced: "10.0.0.1:0", Reachable: "redis-0.example.com:30001"}}}
		}, "with a port from 1 to 65535"),
		Entry("static map value with port 70000", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{
				{Announced: "10.0.0.1:6379", Reachable: "redis-0.example.com:70000"}}}
		}, "spec.nodeAddressMap.static[0].reachable"),
		Entry("static map with an unbracketed IPv6 key", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{
				{Announced: "fd00::1:6379", Reachable: "redis-0.example.com:6379"}}}
		}, "IPv6 in brackets"),
		Entry("duplicate static key", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{
				{Announced: "10.0.0.1:6379", Reachable: "a:1"}, {Announced: "10.0.0.1:6379", Reachable: "b:1"}}}
		}, "Duplicate value"),
		Entry("unknown addressType", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{AddressType: "ExternalName"}}}
		}, `supported values: "PodDNS", "ClusterIP", "LoadBalancer", "NodePort"`),
		Entry("FixedDelay without delay", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ReconnectStrategy = &rconnv1.ReconnectStrategy{Type: rconnv1.ReconnectFixedDelay}
		}, "delay is required for FixedDelay"),
		Entry("None with a delay", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ReconnectStrategy = &rconnv1.ReconnectStrategy{Type: rconnv1.ReconnectNone, Delay: &metav1.Duration{Duration: 1e9}}
		}, "delay is required for FixedDelay and only allowed there"),
		Entry("backoff base above cap", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ReconnectStrategy = &rconnv1.ReconnectStrategy{Base: &metav1.Duration{Duration: 5e9}, Cap: &metav1.Duration{Duration: 1e9}}
		}, "base must not exceed cap"),
		Entry("health timeout not below interval", func(rc *rconnv1.RedisConnection) {
			rc.Spec.HealthCheck = &rconnv1.HealthCheck{Interval: &metav1.Duration{Duration: 5e9}, Timeout: &metav1.Duration{Duration: 5e9}}
		}, "timeout must be shorter than interval"),
		Entry("maxCommandRedirections negative", func(rc *rconnv1.RedisConnection) {
			rc.Spec.MaxCommandRedirections = ptr(int32(-1))
		}, "spec.maxCommandRedirections"),
		Entry("output Secret name that is not a DNS name", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Output = &rconnv1.Output{SecretName: "Bad_Name"}
		}, "secretName must be a lowercase DNS subdomain"),
		Entry("output Secret that would overwrite the ACL Secret", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: rc.Name}}}
		}, "must differ from spec.defaults.acl.secretRef"),
		Entry("output Secret that would overwrite the controller's ACL Secret", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: rc.Name}}
		}, "must differ from spec.controllerACL.secretRef"),
		Entry("output Secret that would overwrite the TLS Secret", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
			rc.Spec.Output = &rconnv1.Output{SecretName: "tls"}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "tls"}}}
		}, "must differ from spec.defaults.tls.secretRef"),
		// Rules that reject what could never work at run time.
		Entry("fromServices with an empty selector, which selects every Service", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{Selector: metav1.LabelSelector{}, AddressType: rconnv1.AddressTypePodDNS}}}
		}, "selector must have matchLabels or matchExpressions: an empty selector selects every Service in the namespace"),
		Entry("fromServices with empty matchLabels", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{Selector: metav1.LabelSelector{MatchLabels: map[string]string{}}, AddressType: rconnv1.AddressTypePodDNS}}}
		}, "selector must have matchLabels or matchExpressions"),
		Entry("fromServices selector with 17 matchExpressions", func(rc *rconnv1.RedisConnection) {
			var reqs []metav1.LabelSelectorRequirement
			for i := range 17 {
				reqs = append(reqs, metav1.LabelSelectorRequirement{Key: fmt.Sprintf("k%d", i), Operator: metav1.LabelSelectorOpExists})
			}
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{Selector: metav1.LabelSelector{MatchExpressions: reqs}, AddressType: rconnv1.AddressTypePodDNS}}}
		}, "selector may have at most 64 matchLabels and 16 matchExpressions"),
		Entry("fromServices port 0", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
				Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}, AddressType: rconnv1.AddressTypePodDNS, Port: ptr(intstr.FromInt32(0))}}}
		}, "port must be a port number from 1 to 65535 or a Service port name"),
		Entry("fromServices port name longer than any Service port name", func(rc *rconnv1.RedisConnection) {
			rc.Spec.NodeAddressMap = &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{
				Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}, AddressType: rconnv1.AddressTypePodDNS, Port: ptr(intstr.FromString("redis-cluster-port"))}}}
		}, "port must be a port number from 1 to 65535 or a Service port name of at most 15 characters"),
		Entry("ACL Secret name that is not a DNS subdomain", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "Bad_Name"}}}
		}, "spec.defaults.acl.secretRef.name: Invalid value: \"Bad_Name\": Secret name must be a lowercase DNS subdomain"),
		Entry("controller ACL Secret name that is not a DNS subdomain", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "Bad_Name"}}
		}, "spec.controllerACL.secretRef.name: Invalid value: \"Bad_Name\": Secret name must be a lowercase DNS subdomain"),
		Entry("TLS Secret name that is not a DNS subdomain", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "rediss://redis:6379"}}
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "tls/../ca"}}}
		}, "spec.defaults.tls.secretRef.name: Invalid value: \"tls/../ca\": Secret name must be a lowercase DNS subdomain"),
		Entry("passwordKey that is a path", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "creds"}, PasswordKey: "../etc/passwd"}}
		}, "passwordKey must be a Secret data key"),
		Entry("usernameKey that is a path", func(rc *rconnv1.RedisConnection) {
			rc.Spec.ControllerACL = &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "creds"}, UsernameKey: "../etc/passwd"}
		}, "spec.controllerACL.usernameKey: Invalid value: \"../etc/passwd\": usernameKey must be a Secret data key"),
		Entry("passwordKey '..'", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "creds"}, PasswordKey: ".."}}
		}, "passwordKey must be a Secret data key"),
		Entry("usernameKey with a space", func(rc *rconnv1.RedisConnection) {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: "creds"}, UsernameKey: "user name"}}
		}, "usernameKey must be a Secret data key"),
		Entry("IPv6 host, which would be dialed as [[::1]]:6379", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "::1"}}
		}, "host must not contain ':' or brackets: for an IPv6 address use url, e.g. url: redis://[::1]:6379"),
		Entry("bracketed IPv6 host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "[fd00::1]", Port: 7000}}
		}, "for an IPv6 address use url"),
		Entry("host with a port inside", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "redis:6379"}}
		}, "host must not contain ':' or brackets"),
		Entry("the same url twice", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis-0:6379"}, {URL: "redis://redis-1:6379"}, {URL: "redis://redis-0:6379"}}
		}, "rootNodes must not list the same node twice"),
		Entry("the same host twice, once with the default port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "redis-0"}, {Host: "redis-0", Port: 6379}}
		}, "rootNodes must not list the same node twice"),
		Entry("the same url with and without the default port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis-0"}, {URL: "redis://redis-0:6379"}}
		}, "rootNodes must not list the same node twice"),
		Entry("the same node as url and as host", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis-0:6379"}, {Host: "redis-0"}}
		}, "rootNodes must not list the same node twice"),
		Entry("the same node as host and port 6379 and as a url without a port", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{Host: "10.0.0.7", Port: 6379}, {URL: "redis://10.0.0.7"}}
		}, "rootNodes must not list the same node twice"),
		Entry("the same url twice, in another case", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://redis-0:6379"}, {URL: "redis://REDIS-0:6379"}}
		}, "rootNodes must not list the same node twice"),
		Entry("the same IPv6 node twice", func(rc *rconnv1.RedisConnection) {
			rc.Spec.RootNodes = []rconnv1.RootNode{{URL: "redis://[::1]:7000"}, {URL: "redis://[::1]:7000"}}
		}, "rootNodes must not list the same node twice"),
	)

	It("bounds duration strings, so CEL rules on them have a bounded cost", func() {
		// A metav1.Duration always marshals short; send the raw string a person could write.
		rc := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "rconn.dev/v1", "kind": "RedisConnection",
			"metadata": map[string]any{"name": fmt.Sprintf("rc-%d", seq.Add(1)), "namespace": "default"},
			"spec": map[string]any{
				"rootNodes": []any{map[string]any{"url": "redis://redis:6379"}},
				"defaults":  map[string]any{"connectTimeout": strings.Repeat("1ms", 30)},
			},
		}}
		err := k8sClient.Create(ctx, rc)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.defaults.connectTimeout: Too long"))
	})

	It("has no namespace field on Secret references", func() {
		// A RedisConnection must never reach a Secret in another namespace: the schema has no way
		// to name one, and unknown fields are dropped by the structural schema.
		raw := []byte(`apiVersion: rconn.dev/v1
kind: RedisConnection
metadata: {name: cross-ns, namespace: default}
spec:
  rootNodes: [{url: "redis://redis:6379"}]
  defaults:
    acl:
      secretRef: {name: creds, namespace: kube-system}
`)
		rc := &rconnv1.RedisConnection{}
		Expect(yaml.Unmarshal(raw, rc)).To(Succeed())
		Expect(k8sClient.Create(ctx, rc)).To(Succeed())
		fetched := &rconnv1.RedisConnection{}
		Expect(k8sClient.Get(ctx, keyOf(rc), fetched)).To(Succeed())
		Expect(fetched.Spec.Defaults.ACL.SecretRef).To(Equal(rconnv1.LocalSecretReference{Name: "creds"}))
	})

	It("rejects bad input sent by kubectl apply with the same message", func() {
		manifest := `apiVersion: rconn.dev/v1
kind: RedisConnection
metadata: {name: kubectl-bad, namespace: default}
spec:
  rootNodes: [{url: "redis://alice:hunter2@redis:6379"}]
`
		cmd := kubectl("apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		out, err := cmd.CombinedOutput()
		Expect(err).To(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("is invalid"))
		Expect(string(out)).To(ContainSubstring("url must not contain a username or password"))
	})
})

func keyOf(rc *rconnv1.RedisConnection) client.ObjectKey { return client.ObjectKeyFromObject(rc) }
