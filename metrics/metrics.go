package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dux-io/dux/dispatch"
)

// NewRegistry returns an empty registry for one agent, holding only the Go
// runtime's and the process's collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves what g gathers in the Prometheus formats. A collector that
// fails is logged and left out; the others are still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

type errorLog struct{ l *slog.Logger }

func (e errorLog) Println(v ...interface{}) {
	if e.l != nil {
		e.l.Warn("metrics: gather failed", "error", v)
	}
}

// HubStats is what the dispatcher collector reads. dispatch.Hub implements it.
type HubStats interface {
	Stats() dispatch.Stats
}

// NewDispatchCollector returns a collector that reads the hub's figures at
// each scrape, so the hub keeps no second set of counters.
func NewDispatchCollector(h HubStats) prometheus.Collector { return dispatchCollector{h} }

type dispatchCollector struct{ h HubStats }

var (
	descSubscribers = prometheus.NewDesc("dux_dispatch_subscribers",
		"Subscriptions open on this member.", nil, nil)
	descSent = prometheus.NewDesc("dux_dispatch_events_sent_total",
		"Events this member has sent to its subscribers.", nil, nil)
	descCutoffs = prometheus.NewDesc("dux_dispatch_cutoffs_total",
		"Subscribers this member cut off because they fell too far behind.", nil, nil)
	descWindowEvents = prometheus.NewDesc("dux_dispatch_window_events",
		"Events held in this member's replay window.", nil, nil)
	descWindowBytes = prometheus.NewDesc("dux_dispatch_window_bytes",
		"Approximate bytes of the events held in this member's replay window.", nil, nil)
	descWindowOldest = prometheus.NewDesc("dux_dispatch_window_oldest_revision",
		"Oldest revision a subscriber may resume after on this member.", nil, nil)
)

func (c dispatchCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSubscribers, descSent, descCutoffs,
		descWindowEvents, descWindowBytes, descWindowOldest} {
		ch <- d
	}
}

func (c dispatchCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Stats()
	put := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v)
	}
	put(descSubscribers, prometheus.GaugeValue, float64(s.Subscribers))
	put(descSent, prometheus.CounterValue, float64(s.Sent))
	put(descCutoffs, prometheus.CounterValue, float64(s.Cutoffs))
	put(descWindowEvents, prometheus.GaugeValue, float64(s.WindowEvents))
	put(descWindowBytes, prometheus.GaugeValue, float64(s.WindowBytes))
	put(descWindowOldest, prometheus.GaugeValue, float64(s.Oldest))
}
