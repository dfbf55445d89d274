package controllers_test

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	"github.com/rconn-dev/redis-connection-operator/controllers"
)

func TestRedisConnectionBySecretRef(t *testing.T) {
	ref := func(n string) rconnv1.LocalSecretReference { return rconnv1.LocalSecretReference{Name: n} }
	for _, tc := range []struct {
		name string
		spec rconnv1.RedisConnectionSpec
		want []string
	}{
		{name: "no Secrets", spec: rconnv1.RedisConnectionSpec{}, want: nil},
		{name: "TLS without a Secret", spec: rconnv1.RedisConnectionSpec{Defaults: &rconnv1.NodeDefaults{TLS: &rconnv1.TLSConfig{Enabled: true}}}, want: nil},
		{name: "ACL", spec: rconnv1.RedisConnectionSpec{Defaults: &rconnv1.NodeDefaults{ACL: &rconnv1.ACLCredentials{SecretRef: ref("acl")}}}, want: []string{"acl"}},
		{
			name: "controller ACL, app ACL and TLS",
			spec: rconnv1.RedisConnectionSpec{
				ControllerACL: &rconnv1.ACLCredentials{SecretRef: ref("ctrl")},
				Defaults: &rconnv1.NodeDefaults{
					ACL: &rconnv1.ACLCredentials{SecretRef: ref("acl")},
					TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "tls"}},
				},
			},
			want: []string{"ctrl", "acl", "tls"},
		},
		{
			name: "Sentinel mode: data ACL and TLS, sentinel ACL and TLS",
			spec: rconnv1.RedisConnectionSpec{
				Mode: rconnv1.ModeSentinel,
				Defaults: &rconnv1.NodeDefaults{
					ACL: &rconnv1.ACLCredentials{SecretRef: ref("acl")},
					TLS: &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "tls"}},
				},
				Sentinel: &rconnv1.SentinelSpec{
					MasterName: "mymaster",
					ACL:        &rconnv1.ACLCredentials{SecretRef: ref("sentinel-acl")},
					TLS:        &rconnv1.TLSConfig{Enabled: true, SecretRef: &rconnv1.LocalSecretReference{Name: "sentinel-tls"}},
				},
			},
			want: []string{"acl", "tls", "sentinel-acl", "sentinel-tls"},
		},
		{name: "Sentinel mode without Secrets", spec: rconnv1.RedisConnectionSpec{Mode: rconnv1.ModeSentinel, Sentinel: &rconnv1.SentinelSpec{MasterName: "m", TLS: &rconnv1.TLSConfig{Enabled: true}}}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := controllers.RedisConnectionBySecretRef(&rconnv1.RedisConnection{Spec: tc.spec})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RedisConnectionBySecretRef = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRedisConnectionByServiceSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    *rconnv1.NodeAddressMap
		want []string
	}{
		{name: "no map", m: nil, want: nil},
		{name: "static only", m: &rconnv1.NodeAddressMap{Static: []rconnv1.StaticAddressMapping{{Announced: "a:1", Reachable: "b:1"}}}, want: nil},
		{name: "fromServices", m: &rconnv1.NodeAddressMap{FromServices: []rconnv1.ServiceAddressSource{{Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}}}}, want: []string{"true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := controllers.RedisConnectionByServiceSources(&rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{NodeAddressMap: tc.m}})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RedisConnectionByServiceSources = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIndexFunctionsRefuseOtherKinds(t *testing.T) {
	for name, fn := range map[string]func() []string{
		controllers.SecretRefsField:     func() []string { return controllers.RedisConnectionBySecretRef(&corev1.Secret{}) },
		controllers.ServiceSourcesField: func() []string { return controllers.RedisConnectionByServiceSources(&corev1.Secret{}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic for a Secret")
				}
			}()
			fn()
		})
	}
}
