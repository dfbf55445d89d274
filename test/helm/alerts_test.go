package helm

import (
	"context"
	"encoding/json"
	"os/exec"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	"sigs.k8s.io/yaml"
)

const (
	rulesFile     = chartDir + "/files/prometheus-rules.yaml"
	dashboardFile = chartDir + "/files/dashboard.json"
	runbookPrefix = "https://github.com/rconn-dev/redis-connection-operator/blob/main/docs/operating.md#"
)

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.UnmarshalStrict(readFile(t, rulesFile), &rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// The rule file is valid and its alerts fire, and stay quiet, as test/helm/testdata/alerts_test.yaml
// says on synthetic series.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("no promtool: run `make deps` (Debian's prometheus package)")
	}
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", "test/helm/testdata/alerts_test.yaml"}} {
		out, err := run(context.Background(), t, nil, promtool, args...)
		if err != nil || !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Every alert has severity, summary and a runbook_url that points at its own section of
// docs/operating.md, and that section exists; promtool's test file covers every alert.
func TestAlertRunbooks(t *testing.T) {
	doc := string(readFile(t, "docs/operating.md"))
	tests := string(readFile(t, "test/helm/testdata/alerts_test.yaml"))
	n := 0
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			anchor := strings.ToLower(r.Alert)
			if got := r.Annotations["runbook_url"]; got != runbookPrefix+anchor {
				t.Errorf("%s: runbook_url %q, want %s%s", r.Alert, got, runbookPrefix, anchor)
			}
			if !strings.Contains(doc, "\n### "+r.Alert+"\n") {
				t.Errorf("%s: docs/operating.md has no runbook section \"### %s\"", r.Alert, r.Alert)
			}
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			if !strings.Contains(tests, "alertname: "+r.Alert+"\n") {
				t.Errorf("%s: not tested in test/helm/testdata/alerts_test.yaml", r.Alert)
			}
		}
	}
	if n < 6 {
		t.Errorf("%d alerts in %s", n, rulesFile)
	}
}

// The chart's PrometheusRule and dashboard ConfigMap carry the files unchanged: one source.
func TestChartMonitoringObjects(t *testing.T) {
	objs := helmTemplate(t, "--set", "prometheusRule.enabled=true", "--set", "dashboard.enabled=true",
		"--set", "metrics.serviceMonitor.enabled=true", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
		"--api-versions", "monitoring.coreos.com/v1/ServiceMonitor")
	pr := find(objs, "PrometheusRule", "rconn-system", "rconn-alerts")
	if pr == nil {
		t.Fatal("no PrometheusRule rconn-alerts")
	}
	var want map[string]any
	if err := yaml.Unmarshal(readFile(t, rulesFile), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pr.Object["spec"], want) {
		t.Errorf("PrometheusRule spec differs from %s", rulesFile)
	}
	cm := find(objs, "ConfigMap", "rconn-system", "rconn-dashboard")
	if cm == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard labels %v: want grafana_dashboard=1 for the Grafana sidecar", cm.GetLabels())
	}
	data, _ := cm.Object["data"].(map[string]any)
	if got, _ := data["rconn.json"].(string); strings.TrimSpace(got) != strings.TrimSpace(string(readFile(t, dashboardFile))) {
		t.Errorf("dashboard ConfigMap rconn.json differs from %s", dashboardFile)
	}
	sm := find(objs, "ServiceMonitor", "rconn-system", "rconn-controller-manager")
	if sm == nil {
		t.Fatal("no ServiceMonitor")
	}
	if b, _ := json.Marshal(sm.Object["spec"]); !strings.Contains(string(b), `"scheme":"https"`) || !strings.Contains(string(b), `"port":"https"`) {
		t.Errorf("ServiceMonitor spec %s: want the https port with scheme https", b)
	}
}

type query struct{ where, expr string }

// queries lists every PromQL expression of the alerts and of the dashboard (panels, rows'
// panels, template variables).
func queries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, query{rulesFile + " " + r.Alert, r.Expr})
		}
	}
	var dash struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, dashboardFile), &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, query{dashboardFile + " panel " + p.Title, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*[a-z_]+\)$`)
	for _, v := range dash.Templating.List {
		if m := labelValues.FindStringSubmatch(v.Definition); m != nil {
			out = append(out, query{dashboardFile + " variable " + v.Name, m[1]})
		}
	}
	return out
}

type dashPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// grafanaVars stand for Grafana's variables, so that dashboard queries parse as PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h", "$namespace", "ns", "$name", "n")

// metricNames parses a PromQL expression (metricsql parses PromQL) and returns the metric names
// it selects.
func metricNames(t *testing.T, q query) []string {
	t.Helper()
	e, err := metricsql.Parse(grafanaVars.Replace(q.expr))
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", q.where, q.expr, err)
		return nil
	}
	seen := map[string]bool{}
	metricsql.VisitAll(e, func(e metricsql.Expr) {
		me, ok := e.(*metricsql.MetricExpr)
		if !ok {
			return
		}
		for _, filters := range me.LabelFilterss {
			for _, f := range filters {
				if f.Label == "__name__" && !f.IsRegexp && !f.IsNegative {
					seen[f.Value] = true
				}
			}
		}
	})
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		t.Errorf("%s: %q selects no metric by name", q.where, q.expr)
	}
	return names
}

// The dashboard shows what the issue asks for: per connection Ready, nodes up, ping latency and
// topology changes; for the manager reconcile rate and latency and the workqueue depth.
func TestDashboardPanels(t *testing.T) {
	used := map[string]bool{}
	for _, q := range queries(t) {
		if strings.HasPrefix(q.where, dashboardFile) {
			for _, n := range metricNames(t, q) {
				used[n] = true
			}
		}
	}
	for _, m := range []string{"rconn_ready", "rconn_node_up", "rconn_node_ping_seconds", "rconn_topology_changes_total",
		"controller_runtime_reconcile_total", "controller_runtime_reconcile_time_seconds_bucket", "workqueue_depth"} {
		if !used[m] {
			t.Errorf("no dashboard panel uses %s", m)
		}
	}
}
