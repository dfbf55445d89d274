package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// The reconnect strategy's documented defaults reach config.json: jitter 200ms unless set, and
// an explicit 0s stays 0.
func TestRenderReconnectJitter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jitter *metav1.Duration
		want   int64
	}{
		{"unset", nil, 200},
		{"explicit", &metav1.Duration{Duration: 750 * time.Millisecond}, 750},
		{"off", &metav1.Duration{}, 0},
	} {
		rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
			RootNodes:         []rconnv1.RootNode{{URL: "redis://127.0.0.1:7000"}},
			ReconnectStrategy: &rconnv1.ReconnectStrategy{Type: rconnv1.ReconnectExponentialBackoff, Jitter: tc.jitter},
		}}
		cfg := renderConfig(rc, &credentials{}, &addressMap{})
		rs := cfg.Rconn.ReconnectStrategy
		if rs == nil || rs.Type != pkgclient.ReconnectTypeExponentialBackoff || rs.JitterMs != tc.want {
			t.Errorf("%s: rendered %+v, want jitterMs %d", tc.name, rs, tc.want)
		}
	}
}
