package metrics_test

import (
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/metrics"
)

// fakeHub returns whatever Stats it was last given.
type fakeHub struct {
	mu sync.Mutex
	s  dispatch.Stats
}

func (f *fakeHub) Stats() dispatch.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeHub) set(s dispatch.Stats) {
	f.mu.Lock()
	f.s = s
	f.mu.Unlock()
}

// scrape serves one request of the handler and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler(reg, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the output does not parse: %v", err)
	}
	return fams
}

func single(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("family %s: got %v, want one series", name, f)
	}
	m := f.Metric[0]
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// Rule: the dispatcher's figures are read from Stats at each scrape, and
// the registry also holds the Go runtime's and the process's collectors.
func TestDispatchCollector_ReadsStatsAtEachScrape(t *testing.T) {
	hub := &fakeHub{}
	reg := metrics.NewRegistry()
	reg.MustRegister(metrics.NewDispatchCollector(hub))

	hub.set(dispatch.Stats{Subscribers: 3, WindowEvents: 10, WindowBytes: 640, Oldest: 7, Revision: 17, Sent: 30, Cutoffs: 1})
	fams := scrape(t, reg)
	for name, want := range map[string]float64{
		"dux_dispatch_subscribers":            3,
		"dux_dispatch_events_sent_total":      30,
		"dux_dispatch_cutoffs_total":          1,
		"dux_dispatch_window_events":          10,
		"dux_dispatch_window_bytes":           640,
		"dux_dispatch_window_oldest_revision": 7,
	} {
		if got := single(t, fams, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for name, typ := range map[string]dto.MetricType{
		"dux_dispatch_events_sent_total": dto.MetricType_COUNTER,
		"dux_dispatch_cutoffs_total":     dto.MetricType_COUNTER,
		"dux_dispatch_subscribers":       dto.MetricType_GAUGE,
	} {
		if got := fams[name].GetType(); got != typ {
			t.Errorf("%s is a %v, want a %v", name, got, typ)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("family %s missing", name)
		}
	}

	hub.set(dispatch.Stats{Subscribers: 1, Sent: 45})
	fams = scrape(t, reg)
	if got := single(t, fams, "dux_dispatch_subscribers"); got != 1 {
		t.Errorf("second scrape: subscribers = %v, want 1", got)
	}
	if got := single(t, fams, "dux_dispatch_events_sent_total"); got != 45 {
		t.Errorf("second scrape: events sent = %v, want 45", got)
	}
}
