package cluster

import (
	"testing"
	"time"
)

func TestTimeoutsAreClippedToMaxTimeout(t *testing.T) {
	base := Options{RootNodes: []RootNode{{URL: "redis://127.0.0.1:6379"}}}
	r, err := resolve(base)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.inspectorTimeout(0); got != DefaultInspectorTimeout {
		t.Fatalf("default inspector timeout %v", got)
	}
	if got := r.inspectorTimeout(-1); got != DefaultInspectorTimeout {
		t.Fatalf("a negative timeout must not mean none for the Inspector: %v", got)
	}
	if got := r.clientTimeout(0, goRedisDefaultTimeout); got != 0 {
		t.Fatalf("without MaxTimeout the Client keeps go-redis's default: %v", got)
	}
	o := base
	o.MaxTimeout = 2 * time.Second
	o.Defaults.ConnectTimeout = time.Hour
	o.ReadTimeout = time.Hour
	r, err = resolve(o)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]time.Duration{
		"connect":                r.Defaults.ConnectTimeout,
		"inspector read":         r.inspectorTimeout(r.ReadTimeout),
		"inspector default":      r.inspectorTimeout(0),
		"client read":            r.clientTimeout(r.ReadTimeout, goRedisDefaultTimeout),
		"client default":         r.clientTimeout(0, goRedisDefaultTimeout),
		"client no timeout (-1)": r.clientTimeout(-1, goRedisDefaultTimeout),
	} {
		if got != 2*time.Second {
			t.Errorf("%s timeout %v, want MaxTimeout 2s", name, got)
		}
	}
	if r.clientTimeout(time.Second, goRedisDefaultTimeout) != time.Second {
		t.Error("a shorter timeout must stay")
	}
	o.MaxTimeout = -1
	if _, err := resolve(o); err == nil {
		t.Error("negative MaxTimeout accepted")
	}
}
