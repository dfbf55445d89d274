package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
	rtls "github.com/rconn-dev/redis-connection-operator/pkg/tls"
)

// Table tests of the small pure functions of this package (the conditions have
// conditions_test.go, rendering render_unit_test.go, status bounds bounds_unit_test.go).

func TestOutputNames(t *testing.T) {
	for _, tc := range []struct {
		out         *rconnv1.Output
		cm, secret  string
		description string
	}{
		{nil, "rc", "rc", "default: the RedisConnection's name"},
		{&rconnv1.Output{ConfigMapName: "cfg"}, "cfg", "rc", "ConfigMap renamed"},
		{&rconnv1.Output{SecretName: "sec"}, "rc", "sec", "Secret renamed"},
		{&rconnv1.Output{ConfigMapName: "a", SecretName: "b"}, "a", "b", "both"},
	} {
		rc := &rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Name: "rc"}, Spec: rconnv1.RedisConnectionSpec{Output: tc.out}}
		if cm, sec := outputNames(rc); cm != tc.cm || sec != tc.secret {
			t.Errorf("%s: got %s/%s, want %s/%s", tc.description, cm, sec, tc.cm, tc.secret)
		}
	}
}

func TestHashDataAndSameContent(t *testing.T) {
	a := hashData(map[string]string{"k": "v"}, nil)
	for _, tc := range []struct {
		name string
		h    string
		same bool
	}{
		{"same content", hashData(map[string]string{"k": "v"}, nil), true},
		{"another value", hashData(map[string]string{"k": "w"}, nil), false},
		{"a string and bytes of the same key differ", hashData(nil, map[string][]byte{"k": []byte("v")}), false},
		{"lengths are part of the hash (k=v1 vs k=v, 1)", hashData(map[string]string{"k": "v1"}, nil), false},
	} {
		if (tc.h == a) != tc.same {
			t.Errorf("%s: hash equality %v, want %v", tc.name, tc.h == a, tc.same)
		}
	}
	for _, tc := range []struct {
		name       string
		have, want map[string]string
		same       bool
	}{
		{"equal", map[string]string{"a": "1"}, map[string]string{"a": "1"}, true},
		{"a key someone added is not ours", map[string]string{"a": "1", "x": "2"}, map[string]string{"a": "1"}, true},
		{"a changed key of ours", map[string]string{"a": "2"}, map[string]string{"a": "1"}, false},
		{"a deleted key of ours", map[string]string{}, map[string]string{"a": "1"}, false},
	} {
		if got := sameStrings(tc.have, tc.want); got != tc.same {
			t.Errorf("sameStrings %s: %v, want %v", tc.name, got, tc.same)
		}
		hb, wb := map[string][]byte{}, map[string][]byte{}
		for k, v := range tc.have {
			hb[k] = []byte(v)
		}
		for k, v := range tc.want {
			wb[k] = []byte(v)
		}
		if got := sameBytes(hb, wb); got != tc.same {
			t.Errorf("sameBytes %s: %v, want %v", tc.name, got, tc.same)
		}
	}
}

func TestHostPortURLAndRootList(t *testing.T) {
	for _, tc := range []struct {
		a    cluster.Address
		tls  bool
		want string
	}{
		{cluster.Address{Host: "h", Port: 7000}, false, "redis://h:7000"},
		{cluster.Address{Host: "h"}, false, "redis://h:6379"},
		{cluster.Address{Host: "h", Port: 7000}, true, "rediss://h:7000"},
		{cluster.Address{Host: "::1", Port: 7000}, true, "rediss://[::1]:7000"},
	} {
		if got := hostPortURL(tc.a, tc.tls); got != tc.want {
			t.Errorf("hostPortURL(%v, %v) = %s, want %s", tc.a, tc.tls, got, tc.want)
		}
	}
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{
		{URL: "rediss://a:1"}, {Host: "b", Port: 2}, {Host: "c"},
	}}}
	if got, want := rootList(rc), "rediss://a:1, b:2, c:6379"; got != want {
		t.Errorf("rootList = %q, want %q", got, want)
	}
}

func TestStaticMap(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m       *addressMap
		nilMap  bool
		wantErr bool
	}{
		{"no map", nil, true, false},
		{"empty map", &addressMap{}, true, false},
		{"an entry", &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{"a.invalid:6379": {Reachable: "127.0.0.1:7000"}}}, false, false},
		{"an entry that does not parse stops the connection", &addressMap{entries: map[string]rconnv1.AppliedAddressMapping{"a.invalid:6379": {Reachable: "127.0.0.1:notaport"}}}, true, true},
	} {
		nm, err := staticMap(tc.m)
		if (err != nil) != tc.wantErr || (nm == nil) != tc.nilMap {
			t.Errorf("%s: map nil %v, err %v", tc.name, nm == nil, err)
		}
		if err != nil && !errors.Is(err, cluster.ErrInvalidOptions) {
			t.Errorf("%s: %v is not ErrInvalidOptions", tc.name, err)
		}
	}
}

func TestTopologyFailureNamesOnlyTheSpec(t *testing.T) {
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "seed.invalid", Port: 6379}}}}
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{fmt.Errorf("dial: %w", errors.New("connection refused")), rconnv1.ReasonRootNodesUnreachable},
		{cluster.ErrNotCluster, rconnv1.ReasonNotACluster},
		{cluster.ErrClusterModeServer, rconnv1.ReasonClusterModeServer},
		{fmt.Errorf("%w: x", cluster.ErrInvalidOptions), rconnv1.ReasonInvalidOptions},
		{fmt.Errorf("read: %w", cluster.ErrReplyBudgetExhausted), rconnv1.ReasonManagerBusy},
	} {
		reason, msg := topologyFailure(rc, tc.err)
		if reason != tc.reason {
			t.Errorf("%v: reason %s, want %s", tc.err, reason, tc.reason)
		}
		if strings.Contains(msg, "connection refused") {
			t.Errorf("%v: message %q tells a refused port from others", tc.err, msg)
		}
	}
}

// TestTLSFailuresReadLikeAClosedPort (issue 23, item 5): with TLS on, a certificate that
// failed verification, a TLS alert, a plain-text peer and a closed port give one reason and one
// message, carrying the same TLS hint; without TLS there is no hint. On the code before, a
// certificate failure read TLSHandshakeFailed, telling every TLS listener from a closed port.
func TestTLSFailuresReadLikeAClosedPort(t *testing.T) {
	node := func(err error) error {
		return fmt.Errorf("%w: %w", cluster.ErrNoNodeAnswered, &cluster.NodeError{Addr: "seed.invalid:6379", Err: err})
	}
	failures := map[string]error{
		"refused":       node(errors.New("connection refused")),
		"unknown CA":    node(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
		"explained":     node(rtls.Explain(x509.UnknownAuthorityError{})),
		"hostname":      node(x509.HostnameError{Host: "seed.invalid"}),
		"expired":       node(x509.CertificateInvalidError{Reason: x509.Expired}),
		"no TLS":        node(tls.RecordHeaderError{Msg: "not TLS"}),
		"alert":         node(errors.New("remote error: tls: bad certificate")),
		"missing name":  node(rtls.ErrMissingServerName),
		"after timeout": node(context.DeadlineExceeded),
	}
	for _, on := range []bool{false, true} {
		rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "seed.invalid", Port: 6379}}}}
		if on {
			rc.Spec.Defaults = &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}
		}
		want := "no Redis server answered at seed.invalid:6379" + tlsHint(on)
		for name, err := range failures {
			reason, msg := topologyFailure(rc, err)
			if reason != rconnv1.ReasonRootNodesUnreachable || msg != want {
				t.Errorf("tls=%v %s: %s, %q; want %s, %q", on, name, reason, msg, rconnv1.ReasonRootNodesUnreachable, want)
			}
			h := []cluster.NodeHealth{{Announced: "n:1", Dialed: "127.0.0.1:1", Err: err}}
			ok, reason, msg := healthCondition(h, on)
			if wantH := "1 of 1 nodes unreachable: n:1 (dialed 127.0.0.1:1): no Redis server answered" + tlsHint(on); ok || reason != rconnv1.ReasonNodesUnreachable || msg != wantH {
				t.Errorf("tls=%v %s: health %s, %q; want %q", on, name, reason, msg, wantH)
			}
		}
	}
	if tlsHint(false) != "" || !strings.Contains(tlsHint(true), "ca.crt") {
		t.Fatalf("hint: %q / %q", tlsHint(false), tlsHint(true))
	}
	// The operator's debug log still names the certificate problem, as a fixed word.
	if kv := certificateLog(failures["unknown CA"]); len(kv) != 2 || kv[1] != "UnknownAuthority" {
		t.Fatalf("certificateLog = %v", kv)
	}
	if kv := certificateLog(failures["refused"]); kv != nil {
		t.Fatalf("certificateLog(refused) = %v", kv)
	}
}

func TestUsesTLS(t *testing.T) {
	for _, tc := range []struct {
		spec rconnv1.RedisConnectionSpec
		want bool
	}{
		{rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{URL: "redis://a:1"}}}, false},
		{rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{URL: "redis://a:1"}, {URL: "REDISS://b:1"}}}, true},
		{rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "a"}}, Defaults: &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}}, true},
		{rconnv1.RedisConnectionSpec{RootNodes: []rconnv1.RootNode{{Host: "a"}}, Defaults: &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{}}}, false},
	} {
		if got := usesTLS(&rconnv1.RedisConnection{Spec: tc.spec}); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.spec, got, tc.want)
		}
	}
}

func TestHealthSettings(t *testing.T) {
	d := func(x time.Duration) *metav1.Duration { return &metav1.Duration{Duration: x} }
	for _, tc := range []struct {
		hc                *rconnv1.HealthCheck
		interval, timeout time.Duration
	}{
		{nil, 30 * time.Second, 2 * time.Second},
		{&rconnv1.HealthCheck{Interval: d(5 * time.Second)}, 5 * time.Second, 2 * time.Second},
		{&rconnv1.HealthCheck{Timeout: d(time.Second)}, 30 * time.Second, time.Second},
		{&rconnv1.HealthCheck{Interval: d(0), Timeout: d(-1)}, 30 * time.Second, 2 * time.Second},
	} {
		rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{HealthCheck: tc.hc}}
		if i, to := healthSettings(rc); i != tc.interval || to != tc.timeout {
			t.Errorf("%+v: got %v/%v, want %v/%v", tc.hc, i, to, tc.interval, tc.timeout)
		}
	}
}

func TestNodeFailureIsAFixedText(t *testing.T) {
	for _, tc := range []struct {
		h    cluster.NodeHealth
		want string
	}{
		{cluster.NodeHealth{Reachable: true, ClusterState: "fail"}, "cluster_state is not ok"},
		{cluster.NodeHealth{Reachable: true, Err: errors.New("-ERR from the server")}, "did not answer ROLE / CLUSTER INFO"},
		{cluster.NodeHealth{Err: errors.New("i/o timeout")}, "no Redis server answered"},
		{cluster.NodeHealth{Err: fmt.Errorf("%w: 10.0.0.1", cluster.ErrAddressDenied)}, "address denied by the manager's address policy"},
		{cluster.NodeHealth{Reachable: true, Err: fmt.Errorf("ROLE: %w", cluster.ErrReplyBudgetExhausted)}, "not checked: the manager's budget for replies in flight was exhausted"},
		{cluster.NodeHealth{Err: x509.UnknownAuthorityError{}}, "no Redis server answered"},
	} {
		if got := nodeFailure(tc.h); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.h, got, tc.want)
		}
	}
}

func TestSmallStringHelpers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{clipList([]string{"a", "b"}, 2), "a; b"},
		{clipList([]string{"a", "b", "c"}, 2), "a; b; and 1 more"},
		{clipList(nil, 2), ""},
		{short("0123456789abcdef"), "01234567"},
		{short("abc"), "abc"},
		{truncate("abcdef", 10), "abcdef"},
		{truncate("abcdefghijkl", 10), "abcdefg..."},
		{mappingKey([]rconnv1.AppliedAddressMapping{{Announced: "a", Reachable: "b"}, {Announced: "c", Reachable: "d"}}), "a=b;c=d;"},
		{nodeSet(&rconnv1.RedisConnectionStatus{Nodes: []rconnv1.NodeStatus{{ID: "2", Announced: "b", Role: rconnv1.RoleReplica}, {ID: "1", Announced: "a", Role: rconnv1.RoleMaster}}}), "1@a/Master,2@b/Replica"},
		{portDesc(nil), `"redis"`},
		{portDesc(ptr(intstr.FromInt32(7000))), "7000"},
		{ptrStr(nil), ""},
		{ptrStr(ptr("x")), "x"},
		{readyReasonOf(nil), rconnv1.ReasonReconciling},
		{readyReasonOf(&metav1.Condition{Reason: rconnv1.ReasonReady}), rconnv1.ReasonReady},
		{fmt.Sprint(boolValue(true), boolValue(false)), "1 0"},
		{fmt.Sprint((&cluster.Node{Health: "fail"}).Failed(), (&cluster.Node{Health: "failed"}).Failed(), (&cluster.Node{Health: "online"}).Failed(), (&cluster.Node{}).Failed()), "true true false false"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestSameCondition(t *testing.T) {
	c := func(s metav1.ConditionStatus, r, m string) *metav1.Condition {
		return &metav1.Condition{Type: "T", Status: s, Reason: r, Message: m, LastTransitionTime: metav1.Now()}
	}
	for _, tc := range []struct {
		a, b *metav1.Condition
		same bool
	}{
		{c("False", "R", "m"), c("False", "R", "m"), true},
		{c("False", "R", "m"), c("True", "R", "m"), false},
		{c("False", "R", "m"), c("False", "S", "m"), false},
		{c("False", "R", "m"), c("False", "R", "n"), false},
		{nil, c("False", "R", "m"), false},
	} {
		if got := sameCondition(tc.a, tc.b); got != tc.same {
			t.Errorf("sameCondition(%v, %v) = %v", tc.a, tc.b, got)
		}
	}
}

func TestServicePort(t *testing.T) {
	svc := func(ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{Spec: corev1.ServiceSpec{Ports: ports}}
	}
	redis, bus := corev1.ServicePort{Name: "redis", Port: 6379}, corev1.ServicePort{Name: "bus", Port: 16379}
	for _, tc := range []struct {
		name string
		svc  *corev1.Service
		want *intstr.IntOrString
		port int32 // 0: none
	}{
		{"by name", svc(redis, bus), ptr(intstr.FromString("bus")), 16379},
		{"by number", svc(redis, bus), ptr(intstr.FromInt32(6379)), 6379},
		{"named port missing", svc(redis), ptr(intstr.FromString("nope")), 0},
		{"default: the one named redis", svc(bus, redis), nil, 6379},
		{"default: the only port", svc(bus), nil, 16379},
		{"default: ambiguous", svc(bus, corev1.ServicePort{Name: "x", Port: 1}), nil, 0},
	} {
		p, ok := servicePort(tc.svc, tc.want)
		switch {
		case tc.port == 0 && ok:
			t.Errorf("%s: picked %d, want none", tc.name, p.Port)
		case tc.port != 0 && (!ok || p.Port != tc.port):
			t.Errorf("%s: got %v %v, want %d", tc.name, p, ok, tc.port)
		}
	}
}

func TestEndpointServing(t *testing.T) {
	b := func(v bool) *bool { return &v }
	for _, tc := range []struct {
		c    discoveryv1.EndpointConditions
		want bool
	}{
		{discoveryv1.EndpointConditions{}, true},
		{discoveryv1.EndpointConditions{Ready: b(false)}, false},
		{discoveryv1.EndpointConditions{Ready: b(true)}, true},
		{discoveryv1.EndpointConditions{Ready: b(false), Serving: b(true), Terminating: b(true)}, true},
		{discoveryv1.EndpointConditions{Ready: b(true), Serving: b(false)}, false},
	} {
		if got := endpointServing(discoveryv1.Endpoint{Conditions: tc.c}); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestSecretRefsAndServiceSelectors(t *testing.T) {
	acl := func(n string) *rconnv1.ACLCredentials {
		return &rconnv1.ACLCredentials{SecretRef: rconnv1.LocalSecretReference{Name: n}}
	}
	for _, tc := range []struct {
		spec rconnv1.RedisConnectionSpec
		want string
	}{
		{rconnv1.RedisConnectionSpec{}, ""},
		{rconnv1.RedisConnectionSpec{ControllerACL: acl("ctrl"), Defaults: &rconnv1.NodeDefaults{ACL: acl("app"),
			TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "tls"}}}}, "ctrl,app,tls"},
		{rconnv1.RedisConnectionSpec{Defaults: &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}}, ""},
	} {
		if got := strings.Join(secretRefs(&rconnv1.RedisConnection{Spec: tc.spec}), ","); got != tc.want {
			t.Errorf("secretRefs = %q, want %q", got, tc.want)
		}
	}
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{NodeAddressMap: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{
		{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}},
		{Selector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Bogus"}}}},
	}}}}
	sels := serviceSelectors(rc)
	if len(sels) != 1 || !sels[0].Matches(labels.Set{"app": "redis"}) || sels[0].Matches(labels.Set{"app": "other"}) {
		t.Errorf("serviceSelectors = %v: want the one valid selector", sels)
	}
	if serviceSelectors(&rconnv1.RedisConnection{}) != nil {
		t.Error("no map: no selectors")
	}
}

func TestTLSReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{rtls.ErrCertificateExpired, rconnv1.ReasonCertificateExpired},
		{rtls.ErrCertificateNotYetValid, rconnv1.ReasonCertificateNotYetValid},
		{rtls.ErrKeyMismatch, rconnv1.ReasonKeyMismatch},
		{rtls.ErrMalformedPEM, rconnv1.ReasonInvalidCertificate},
		{errors.New("other"), rconnv1.ReasonInvalidCertificate},
	} {
		if got := tlsReason(tc.err); got != tc.want {
			t.Errorf("tlsReason(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestReaderRoleRules(t *testing.T) {
	rules := readerRoleRules("cm", "sec")
	got := fmt.Sprint(rules)
	for _, want := range []string{"configmaps", "secrets", "cm", "sec", "get", "watch"} {
		if !strings.Contains(got, want) {
			t.Errorf("rules %s lack %q", got, want)
		}
	}
	for _, verb := range []string{"list", "update", "patch", "delete", "create", "*"} {
		for _, r := range rules {
			for _, v := range r.Verbs {
				if v == verb {
					t.Errorf("reader rules grant %q: %s", verb, got)
				}
			}
		}
	}
}

func TestTopologyClipNote(t *testing.T) {
	nodes := func(n int) []*cluster.Node {
		out := make([]*cluster.Node, n)
		for i := range out {
			out[i] = &cluster.Node{}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		t    *cluster.Topology
		want string
	}{
		{"small", &cluster.Topology{Nodes: nodes(3), Shards: make([]cluster.Shard, 3)}, ""},
		{"too many nodes", &cluster.Topology{Nodes: nodes(maxStatusNodes + 1)}, fmt.Sprintf("status.nodes lists the first %d of %d nodes", maxStatusNodes, maxStatusNodes+1)},
		{"too many replicas", &cluster.Topology{Shards: []cluster.Shard{{Replicas: nodes(maxStatusReplicas + 2)}}}, fmt.Sprintf("a shard lists %d of its %d replicas", maxStatusReplicas, maxStatusReplicas+2)},
	} {
		if got := topologyClipNote(tc.t); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestPairOutputs(t *testing.T) {
	for _, tc := range []struct {
		name string
		data map[string][]byte
		keys string
	}{
		{"nothing configured: an empty list, not absent", map[string][]byte{"type": []byte("redis")}, ""},
		{"password only", map[string][]byte{pkgclient.SecretKeyPassword: []byte("p")}, pkgclient.SecretKeyPassword},
		{"ACL user and mTLS, in a fixed order", map[string][]byte{
			pkgclient.SecretKeyKey: nil, pkgclient.SecretKeyCert: nil, pkgclient.SecretKeyUsername: nil, pkgclient.SecretKeyPassword: nil,
		}, strings.Join([]string{pkgclient.SecretKeyUsername, pkgclient.SecretKeyPassword, pkgclient.SecretKeyCert, pkgclient.SecretKeyKey}, ",")},
	} {
		cfg := &pkgclient.Config{RootNodes: []pkgclient.RootNodeConfig{{URL: "redis://127.0.0.1:6379"}}}
		raw, err := pkgclient.BindSecret(cfg, tc.data, "tok")
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Rconn.SecretKeys == nil || strings.Join(cfg.Rconn.SecretKeys, ",") != tc.keys {
			t.Errorf("%s: secretKeys %#v, want %q", tc.name, cfg.Rconn.SecretKeys, tc.keys)
		}
		if cfg.Rconn.SecretToken != "tok" || string(tc.data[pkgclient.SecretKeyToken]) != "tok" {
			t.Errorf("%s: the token is not in both outputs", tc.name)
		}
		if got := string(tc.data[pkgclient.SecretKeyConfigDigest]); got != pkgclient.ConfigDigest(raw) || len(got) != 64 {
			t.Errorf("%s: the Secret's %s is %q, not the SHA-256 of config.json", tc.name, pkgclient.SecretKeyConfigDigest, got)
		}
	}
}

func TestWaitingCondition(t *testing.T) {
	for _, tc := range []struct{ typ, want string }{
		{rconnv1.ConditionNodesHealthy, "waiting for CredentialsResolved"},
		{rconnv1.ConditionConfigRendered, "keeping the previous output until CredentialsResolved is True"},
	} {
		c := waitingCondition(tc.typ, rconnv1.ConditionCredentialsResolved)
		if c.ok || c.reason != rconnv1.ReasonPrerequisitesNotMet || c.message != tc.want || c.blocks {
			t.Errorf("%s: %+v", tc.typ, c)
		}
	}
}

func TestOwnedMetaAndWriteErrors(t *testing.T) {
	rc := &rconnv1.RedisConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cache"}}
	m := ownedMeta(rc, "out", "h1")
	if m.Namespace != "ns" || m.Name != "out" || m.Labels[LabelConnection] != "cache" || m.Labels[LabelManagedBy] != managedBy || m.Annotations[AnnotationContentHash] != "h1" {
		t.Errorf("ownedMeta = %+v", m)
	}
	for _, tc := range []struct {
		err      error
		conflict bool
	}{
		{apierrors.NewAlreadyExists(corev1.Resource("configmaps"), "out"), true},
		{apierrors.NewForbidden(corev1.Resource("configmaps"), "out", errors.New("no")), false},
	} {
		err := outputWriteError("ConfigMap", "out", tc.err)
		var c *errOutputConflict
		if errors.As(err, &c) != tc.conflict {
			t.Errorf("%v: conflict %v, want %v", tc.err, !tc.conflict, tc.conflict)
		}
		if !tc.conflict && !errors.Is(err, tc.err) {
			t.Errorf("%v is not wrapped", tc.err)
		}
	}
	for _, tc := range []struct{ p, want int }{{0, cluster.DefaultPort}, {7000, 7000}} {
		if got := portOr(tc.p); got != tc.want {
			t.Errorf("portOr(%d) = %d", tc.p, got)
		}
	}
}

// A restarted controller reuses the token of the Secret there only when that Secret holds this
// material and is bound to the config.json the token renders; else it draws a new one.
func TestReusableToken(t *testing.T) {
	cfg := func(port int) *pkgclient.Config {
		return &pkgclient.Config{RootNodes: []pkgclient.RootNodeConfig{{URL: fmt.Sprintf("redis://127.0.0.1:%d", port)}}}
	}
	material := func() map[string][]byte {
		return map[string][]byte{pkgclient.SecretKeyPassword: []byte("p"), "type": []byte("redis")}
	}
	have := material()
	if _, err := pkgclient.BindSecret(cfg(6379), have, "tok"); err != nil {
		t.Fatal(err)
	}
	if got := reusableToken(have, cfg(6379), material()); got != "tok" {
		t.Errorf("same material, same config.json: %q, want the token in use", got)
	}
	if got := reusableToken(have, cfg(6380), material()); got != "" {
		t.Errorf("another config.json: %q, want a new token", got)
	}
	other := material()
	other[pkgclient.SecretKeyPassword] = []byte("rotated")
	if got := reusableToken(have, cfg(6379), other); got != "" {
		t.Errorf("other material: %q, want a new token", got)
	}
}
