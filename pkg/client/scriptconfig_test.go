package client_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rconn-dev/redis-connection-operator/pkg/client"
)

func TestValidateScriptsAndFunctions(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*client.Config)
		want string // "" = valid
	}{
		{"valid", func(*client.Config) {}, ""},
		{"bad script name", func(c *client.Config) { c.Scripts["a-b"] = client.ScriptConfig{Script: "return 1"} }, `scripts["a-b"]`},
		{"empty script", func(c *client.Config) { c.Scripts["s"] = client.ScriptConfig{} }, `scripts["s"].SCRIPT: 0 bytes`},
		{"script too large", func(c *client.Config) {
			c.Scripts["s"] = client.ScriptConfig{Script: strings.Repeat("x", client.MaxScriptBytes+1)}
		}, "SCRIPT: 16385 bytes"},
		{"negative keys", func(c *client.Config) { c.Scripts["s"] = client.ScriptConfig{Script: "x", NumberOfKeys: -1} }, "NUMBER_OF_KEYS -1"},
		{"library without code", func(c *client.Config) { delete(c.Rconn.FunctionLibraries, "lib") }, "has no code for it"},
		{"code without declarations", func(c *client.Config) { c.Rconn.FunctionLibraries["other"] = "#!lua name=other\n" }, "no functions declare it"},
		{"code naming another library", func(c *client.Config) { c.Rconn.FunctionLibraries["lib"] = "#!lua name=libx\n" }, "must start with"},
		{"library without functions", func(c *client.Config) { c.Functions["lib"] = map[string]client.FunctionConfig{} }, "0 functions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &client.Config{
				RootNodes: []client.RootNodeConfig{{URL: "redis://127.0.0.1:6379"}},
				Scripts:   map[string]client.ScriptConfig{"s": {Script: "return 1", NumberOfKeys: 1}},
				Functions: map[string]map[string]client.FunctionConfig{"lib": {"f": {NumberOfKeys: 1}}},
				Rconn:     client.RconnConfig{FunctionLibraries: map[string]string{"lib": "#!lua name=lib\nredis.register_function('f', function() return 1 end)"}},
			}
			tc.edit(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, client.ErrInvalidConfig)):
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// A changed script or library is reported as needing a restart, never silently ignored.
func TestRestartFieldsScripts(t *testing.T) {
	a := &client.Config{Scripts: map[string]client.ScriptConfig{"s": {Script: "return 1"}}}
	b := &client.Config{Scripts: map[string]client.ScriptConfig{"s": {Script: "return 2"}}, Rconn: client.RconnConfig{FunctionLibraries: map[string]string{"l": "x"}}}
	got := strings.Join(client.RestartFields(a, b), ",")
	if got != "scripts,rconn.functionLibraries" {
		t.Fatalf("RestartFields = %q", got)
	}
}
