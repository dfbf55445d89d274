package client

import (
	"regexp"
	"sort"
	"strings"
)

// ScriptConfig is a node-redis script definition as JSON carries it: node-redis also needs
// parseCommand and transformReply, which are functions (docs/consuming.md has the three lines
// that add them, and defineScript adds SHA1).
type ScriptConfig struct {
	Script string `json:"SCRIPT"`
	// NumberOfKeys is always written: node-redis puts it in EVALSHA's numkeys, and the glue
	// uses it to tell keys (routing) from arguments.
	NumberOfKeys int  `json:"NUMBER_OF_KEYS"`
	ReadOnly     bool `json:"IS_READ_ONLY,omitempty"`
}

// FunctionConfig is a node-redis function definition as JSON carries it (the function is
// called by its key in "functions"; see ScriptConfig for the JavaScript parts).
type FunctionConfig struct {
	NumberOfKeys int  `json:"NUMBER_OF_KEYS"`
	ReadOnly     bool `json:"IS_READ_ONLY,omitempty"`
}

// Bounds of scripts and function libraries (the CRD has the same): together at most 512 KiB of
// code, so that config.json stays within a ConfigMap's 1 MiB with room for the rest (JSON
// escaping of quotes and newlines adds a few per cent).
const (
	MaxScripts            = 16
	MaxScriptBytes        = 16 << 10
	MaxFunctionLibraries  = 4
	MaxFunctionLibBytes   = 64 << 10
	MaxFunctionsPerLib    = 64
	maxScriptNumberOfKeys = 1 << 16
)

// scriptName is what Redis accepts as a function or library name, which also makes a plain
// JavaScript property for node-redis.
var scriptName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// validateScripts checks scripts, functions and rconn.functionLibraries.
func (c *Config) validateScripts(p *problems) {
	if len(c.Scripts) > MaxScripts {
		p.bad("scripts: %d, at most %d", len(c.Scripts), MaxScripts)
	}
	for _, name := range sortedKeys(c.Scripts) {
		s := c.Scripts[name]
		if !scriptName.MatchString(name) {
			p.bad("scripts[%q]: want a name of letters, digits and '_' (at most 64)", name)
		}
		if s.Script == "" || len(s.Script) > MaxScriptBytes {
			p.bad("scripts[%q].SCRIPT: %d bytes, want 1 to %d", name, len(s.Script), MaxScriptBytes)
		}
		if s.NumberOfKeys < 0 || s.NumberOfKeys > maxScriptNumberOfKeys {
			p.bad("scripts[%q].NUMBER_OF_KEYS %d: out of range", name, s.NumberOfKeys)
		}
	}
	if len(c.Functions) > MaxFunctionLibraries || len(c.Rconn.FunctionLibraries) > MaxFunctionLibraries {
		p.bad("functions: at most %d libraries", MaxFunctionLibraries)
	}
	for _, lib := range sortedKeys(c.Functions) {
		c.validateLibrary(p, lib)
	}
	for _, lib := range sortedKeys(c.Rconn.FunctionLibraries) {
		if _, ok := c.Functions[lib]; !ok {
			p.bad("rconn.functionLibraries[%q]: no functions declare it", lib)
		}
	}
}

func (c *Config) validateLibrary(p *problems, lib string) {
	fns := c.Functions[lib]
	if !scriptName.MatchString(lib) {
		p.bad("functions[%q]: want a library name of letters, digits and '_' (at most 64)", lib)
	}
	if len(fns) == 0 || len(fns) > MaxFunctionsPerLib {
		p.bad("functions[%q]: %d functions, want 1 to %d", lib, len(fns), MaxFunctionsPerLib)
	}
	for _, fn := range sortedKeys(fns) {
		if !scriptName.MatchString(fn) {
			p.bad("functions[%q][%q]: want a function name of letters, digits and '_' (at most 64)", lib, fn)
		}
		if n := fns[fn].NumberOfKeys; n < 0 || n > maxScriptNumberOfKeys {
			p.bad("functions[%q][%q].NUMBER_OF_KEYS %d: out of range", lib, fn, n)
		}
	}
	code, ok := c.Rconn.FunctionLibraries[lib]
	switch {
	case !ok:
		p.bad("functions[%q]: rconn.functionLibraries has no code for it", lib)
	case len(code) > MaxFunctionLibBytes:
		p.bad("rconn.functionLibraries[%q]: %d bytes, at most %d", lib, len(code), MaxFunctionLibBytes)
	case !strings.HasPrefix(code, "#!lua name="+lib+"\n") && !strings.HasPrefix(code, "#!lua name="+lib+" "):
		p.bad("rconn.functionLibraries[%q]: the code must start with %q", lib, "#!lua name="+lib)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// scriptOptions are the Scripts option of the declared scripts.
func (c *Config) scriptOptions() map[string]Script {
	if len(c.Scripts) == 0 {
		return nil
	}
	out := make(map[string]Script, len(c.Scripts))
	for name, s := range c.Scripts {
		out[name] = Script{Source: s.Script, ReadOnly: s.ReadOnly}
	}
	return out
}
