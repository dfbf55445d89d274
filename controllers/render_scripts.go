package controllers

import (
	rconnv1 "github.com/rconn-dev/redis-connection-operator/api/v1"
	pkgclient "github.com/rconn-dev/redis-connection-operator/pkg/client"
)

// renderScripts puts spec.scripts and spec.functionLibraries into config.json: node-redis's
// "scripts" and "functions" (what JSON can carry of them) and the libraries' code under
// rconn.functionLibraries.
func renderScripts(rc *rconnv1.RedisConnection, cfg *pkgclient.Config) {
	for _, s := range rc.Spec.Scripts {
		if cfg.Scripts == nil {
			cfg.Scripts = map[string]pkgclient.ScriptConfig{}
		}
		cfg.Scripts[s.Name] = pkgclient.ScriptConfig{Script: s.Lua, NumberOfKeys: int(s.NumberOfKeys), ReadOnly: s.ReadOnly}
	}
	for _, lib := range rc.Spec.FunctionLibraries {
		if cfg.Functions == nil {
			cfg.Functions = map[string]map[string]pkgclient.FunctionConfig{}
			cfg.Rconn.FunctionLibraries = map[string]string{}
		}
		fns := map[string]pkgclient.FunctionConfig{}
		for _, f := range lib.Functions {
			fns[f.Name] = pkgclient.FunctionConfig{NumberOfKeys: int(f.NumberOfKeys), ReadOnly: f.ReadOnly}
		}
		cfg.Functions[lib.Name] = fns
		cfg.Rconn.FunctionLibraries[lib.Name] = lib.Code
	}
}
