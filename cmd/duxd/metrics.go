package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/metrics"
	"github.com/dux-io/dux/rpc"
)

// setupMetrics creates the agent's Prometheus registry with every Dux
// collector and sets api.Metrics. It returns the wrapper that serves
// /metrics beside the handler it wraps and counts every HTTP request.
func setupMetrics(api *rpc.Config, node *cluster.Node, hub *dispatch.Hub, logger *slog.Logger) (func(http.Handler) http.Handler, error) {
	reg := metrics.NewRegistry()
	if err := reg.Register(node.Collector()); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := reg.Register(metrics.NewDispatchCollector(hub)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m, err := rpc.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	api.Metrics = m
	serve := metrics.Handler(reg, logger.With("subsystem", "metrics"))
	return func(h http.Handler) http.Handler {
		return m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				r.Pattern = "/metrics"
				serve.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		}))
	}, nil
}
