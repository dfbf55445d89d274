package managertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scraping and reading the manager's Prometheus metrics.

// Metrics scrapes /metrics and parses the Prometheus text format.
func (m *Manager) Metrics() (map[string]*dto.MetricFamily, error) {
	return Scrape(context.Background(), http.DefaultClient, "http://"+m.MetricsAddr+"/metrics")
}

// WaitForMetric scrapes /metrics until the family name appears (controller-runtime registers
// its controller series only once the caches synced and workers started, after /readyz), or
// ctx ends, or the process exits.
func (m *Manager) WaitForMetric(ctx context.Context, name string) (map[string]*dto.MetricFamily, error) {
	for {
		mfs, err := m.Metrics()
		if err == nil && mfs[name] != nil {
			return mfs, nil
		}
		if m.Exited() {
			return nil, fmt.Errorf("the manager exited (%s) before exposing %s", m.cmd.ProcessState, name)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("no metric %s", name)
			}
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Scrape fetches a Prometheus text endpoint with hc and parses it.
func Scrape(ctx context.Context, hc interface {
	Do(*http.Request) (*http.Response, error)
}, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, tail(string(body), 500))
	}
	return Parse(bytes.NewReader(body))
}

// Parse reads the Prometheus text exposition format.
func Parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Sum adds the values (gauge, counter or untyped; a histogram's sample count) of every series of
// a family whose labels include all of match. A missing family sums to 0.
func Sum(mfs map[string]*dto.MetricFamily, name string, match map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	total := 0.0
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, match) {
			continue
		}
		switch {
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Untyped != nil:
			total += m.GetUntyped().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

func hasLabels(m *dto.Metric, match map[string]string) bool {
	for k, v := range match {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
