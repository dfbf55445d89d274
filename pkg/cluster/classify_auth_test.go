package cluster_test

import (
	"testing"
	"time"

	"github.com/rconn-dev/redis-connection-operator/internal/world/redistest"
	"github.com/rconn-dev/redis-connection-operator/pkg/cluster"
)

// TestClassifyAuthAgainstARealServer: what a real redis-server replies to refused credentials
// and to a user without the commands the check needs is AuthenticationFailed, through
// go-redis's typed errors (redis.IsAuthError / IsPermissionError), not through error text.
func TestClassifyAuthAgainstARealServer(t *testing.T) {
	s := redistest.StartServer(t, redistest.ServerOptions{Password: "right", Users: []redistest.User{
		{Name: "app", Password: "apppw", Rules: "~* &* +@all"},
		{Name: "noinfo", Password: "pw", Rules: "~* &* +@all -info -role"},
		{Name: "norole", Password: "pw", Rules: "~* &* +@all -role"},
	}})
	for _, tc := range []struct {
		name     string
		user, pw string
	}{
		{"wrong password (WRONGPASS)", "app", "wrong"},
		{"unknown user (WRONGPASS)", "nobody", "x"},
		{"no credentials (NOAUTH)", "", ""},
		{"wrong default password", "", "wrong"},
		{"no permission for the check (NOPERM)", "noinfo", "pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, err := cluster.NewInspector(cluster.Options{Standalone: true, RootNodes: []cluster.RootNode{{URL: "redis://" + s.Addr()}},
				Dial: newRecorder(nil).Dial, Defaults: cluster.NodeOptions{Username: tc.user, Password: tc.pw}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = in.Close() }()
			_, err = in.Discover(testCtx(t))
			if class, msg := cluster.Classify(err); class != cluster.ClassAuthenticationFailed {
				t.Fatalf("Classify(%v) = %s (%q), want %s", err, class, msg, cluster.ClassAuthenticationFailed)
			}
		})
	}
	// The health check wraps the reply ("ROLE: NOPERM ..."): still a permission error.
	t.Run("health check without ROLE (wrapped NOPERM)", func(t *testing.T) {
		in, err := cluster.NewInspector(cluster.Options{Standalone: true, RootNodes: []cluster.RootNode{{URL: "redis://" + s.Addr()}},
			Dial: newRecorder(nil).Dial, Defaults: cluster.NodeOptions{Username: "norole", Password: "pw"}})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = in.Close() }()
		topo, err := in.Discover(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		h := in.CheckHealth(testCtx(t), topo, time.Second)
		if len(h) != 1 || h[0].Err == nil {
			t.Fatalf("health: %+v", h)
		}
		if class, msg := cluster.Classify(h[0].Err); class != cluster.ClassAuthenticationFailed {
			t.Fatalf("Classify(%v) = %s (%q), want %s", h[0].Err, class, msg, cluster.ClassAuthenticationFailed)
		}
	})
}
