package controllers

import (
	"testing"

	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// spec.scripts and spec.functionLibraries reach config.json under node-redis's names, and the
// file loads in pkg/client.
func TestRenderScripts(t *testing.T) {
	code := "#!lua name=mylib\nredis.register_function('f', function(k, a) return 1 end)"
	rc := &rconnv1.RedisConnection{Spec: rconnv1.RedisConnectionSpec{
		RootNodes: []rconnv1.RootNode{{URL: "redis://127.0.0.1:7000"}},
		Scripts:   []rconnv1.LuaScript{{Name: "incr_by", Lua: "return 1", NumberOfKeys: 1, ReadOnly: true}},
		FunctionLibraries: []rconnv1.FunctionLibrary{{Name: "mylib", Code: code,
			Functions: []rconnv1.LibraryFunction{{Name: "f", NumberOfKeys: 2}}}},
	}}
	b, err := pkgclient.Render(renderConfig(rc, &addressMap{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pkgclient.LoadConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Scripts["incr_by"]; got != (pkgclient.ScriptConfig{Script: "return 1", NumberOfKeys: 1, ReadOnly: true}) {
		t.Fatalf("scripts: %+v\n%s", cfg.Scripts, b)
	}
	if got := cfg.Functions["mylib"]["f"]; got.NumberOfKeys != 2 || cfg.Rconn.FunctionLibraries["mylib"] != code {
		t.Fatalf("functions: %+v, %q\n%s", cfg.Functions, cfg.Rconn.FunctionLibraries, b)
	}
}
