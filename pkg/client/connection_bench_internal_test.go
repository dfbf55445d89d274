package client

import (
	"reflect"
	"testing"
)

// handWrittenRestartFields is restartFields as it was written out field by field before
// configFields: the obvious alternative, benchmarked side by side.
func handWrittenRestartFields(a, b *Config) []string {
	var out []string
	diff := func(name string, x, y any) {
		if !reflect.DeepEqual(x, y) {
			out = append(out, name)
		}
	}
	diff("rootNodes", a.RootNodes, b.RootNodes)
	diff("defaults", a.Defaults, b.Defaults)
	diff("useReplicas", a.UseReplicas, b.UseReplicas)
	diff("minimizeConnections", a.MinimizeConnections, b.MinimizeConnections)
	diff("maxCommandRedirections", a.MaxCommandRedirections, b.MaxCommandRedirections)
	diff("rconn.mode", a.ModeOrDefault(), b.ModeOrDefault())
	diff("rconn.reconnectStrategy", a.Rconn.ReconnectStrategy, b.Rconn.ReconnectStrategy)
	diff("rconn.autoPipeline", a.Rconn.AutoPipeline, b.Rconn.AutoPipeline)
	diff("rconn.tlsInsecureSkipVerify", a.Rconn.TLSInsecureSkipVerify, b.Rconn.TLSInsecureSkipVerify)
	diff("rconn.secretFiles", a.Rconn.SecretFiles.withDefaults(), b.Rconn.SecretFiles.withDefaults())
	diff("scripts", a.Scripts, b.Scripts)
	diff("functions", a.Functions, b.Functions)
	diff("rconn.functionLibraries", a.Rconn.FunctionLibraries, b.Rconn.FunctionLibraries)
	return out
}

// A reload compares the running config with the new one once per applied version: a map of
// 100 nodes, as a mid-size cluster renders.
func BenchmarkRestartFields(b *testing.B) {
	a := &Config{RootNodes: []RootNodeConfig{{URL: "redis://127.0.0.1:7000"}}, NodeAddressMap: map[string]MappedAddress{}}
	for i := range 100 {
		a.NodeAddressMap[string(rune('a'+i%26))+string(rune('a'+i/26))+":6379"] = MappedAddress{Host: "127.0.0.1", Port: 7000 + i}
	}
	c := a.clone()
	c.Defaults.Name = "x"
	for _, bc := range []struct {
		name string
		f    func(a, b *Config) []string
	}{{"table", restartFields}, {"handWritten", handWrittenRestartFields}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(bc.f(a, c)) != 1 {
					b.Fatal("want one field")
				}
			}
		})
	}
}
