package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// version is stamped by `make build` / `make release` (-ldflags "-X main.version=vX.Y.Z");
// a plain go build says "dev".
var version = "dev"

// revision is the VCS commit Go recorded in the binary ("unknown" without one, e.g. when built
// from an archive), with "-dirty" for a modified work tree.
func revision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

func versionString() string {
	return fmt.Sprintf("manager %s (revision %s, %s)", version, revision(), runtime.Version())
}

// registerBuildInfo exports rconn_build_info{version,revision,goversion} 1, the usual way to
// see which release every replica runs (and to join it to other series).
func registerBuildInfo() {
	metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "rconn_build_info",
		Help:        "Always 1; the labels say which build of the manager runs (version as released, VCS revision, Go version).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision(), "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
}
