package rpc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/proto"
)

func newTestMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// series returns the counter value of every series of family name, keyed
// by its labels as name=value pairs joined with commas, in label order.
func series(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(labels, ",")] = counterOrCount(m)
		}
	}
	return out
}

func counterOrCount(m *dto.Metric) float64 {
	if m.Histogram != nil {
		return float64(m.Histogram.GetSampleCount())
	}
	return m.Counter.GetValue()
}

// Rule: HTTP requests are labelled by the route pattern that served them,
// never by the raw path, so that keys cannot blow up the label set.
func TestMetrics_HTTPRoutesArePatterns(t *testing.T) {
	m, reg := newTestMetrics(t)
	h := m.HTTP(NewHTTP(Config{Backend: &fakeBackend{}, MaxValueBytes: 16}))
	for _, r := range []struct{ method, target, body string }{
		{"PUT", "/v1/state/a/b", `1`},
		{"PUT", "/v1/state/c/d/e", `1`},
		{"PUT", "/v1/state/a/b", `"far more than sixteen bytes"`},
		{"GET", "/v1/state/a/?prefix=true", ``},
		{"POST", "/v1/txn", `{}`},
		{"DELETE", "/v1/txn", ``},
		{"BREW", "/v1/txn", ``},
		{"GET", "/no/such/thing", ``},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(r.method, r.target, strings.NewReader(r.body)))
	}
	got := series(t, reg, "dux_http_requests_total")
	want := map[string]float64{
		"code=200,method=PUT,route=/v1/state/{key...}": 2,
		"code=400,method=PUT,route=/v1/state/{key...}": 1,
		"code=200,method=GET,route=/v1/state/{key...}": 1,
		"code=200,method=POST,route=/v1/txn":           1,
		// The API's catch-all "/" answers 404 to any other method and path.
		"code=404,method=DELETE,route=/": 1,
		"code=404,method=other,route=/":  1,
		"code=404,method=GET,route=/":    1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("dux_http_requests_total{%s} = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series: got %v, want exactly %v", got, want)
	}
	if d := series(t, reg, "dux_http_request_duration_seconds"); len(d) != len(want) {
		t.Errorf("duration series: got %v, want one per request series", d)
	}
}

// Rule: the wrapper keeps http.Flusher, which the server-sent event stream
// needs, and reports the status of a stream that only flushed.
func TestMetrics_HTTPKeepsFlusher(t *testing.T) {
	m, reg := newTestMetrics(t)
	h := m.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Pattern = "GET /v1/subscribe"
		f, ok := w.(http.Flusher)
		if !ok {
			t.Fatal("the wrapped ResponseWriter is not an http.Flusher")
		}
		f.Flush()
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/subscribe?channel=/", nil))
	if !rec.Flushed {
		t.Error("Flush did not reach the underlying writer")
	}
	if got := series(t, reg, "dux_http_requests_total")["code=200,method=GET,route=/v1/subscribe"]; got != 1 {
		t.Errorf("subscribe requests = %v, want 1", got)
	}
}

// Rule: gRPC requests are counted by full method and by the status code
// the client gets; every registered method starts at zero.
func TestMetrics_GRPCMethodsAndCodes(t *testing.T) {
	m, reg := newTestMetrics(t)
	s := grpc.NewServer()
	proto.RegisterStateServer(s, &stateServer{})
	m.initGRPC(s)
	if got := series(t, reg, "dux_grpc_requests_total"); len(got) != 8 || got["code=OK,method=/dux.v1.State/Txn"] != 0 {
		t.Errorf("before any request: got %v, want the 8 State methods at 0", got)
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/dux.v1.State/Get"}
	ok := func(context.Context, any) (any, error) { return "x", nil }
	missing := func(context.Context, any) (any, error) { return nil, status.Error(codes.NotFound, "no") }
	m.unary(context.Background(), nil, info, ok)
	m.unary(context.Background(), nil, info, missing)
	m.unary(context.Background(), nil, info, missing)
	m.stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/dux.v1.Dispatcher/Subscribe"},
		func(any, grpc.ServerStream) error { return status.Error(codes.ResourceExhausted, "slow") })
	got := series(t, reg, "dux_grpc_requests_total")
	for k, v := range map[string]float64{
		"code=OK,method=/dux.v1.State/Get":                           1,
		"code=NotFound,method=/dux.v1.State/Get":                     2,
		"code=ResourceExhausted,method=/dux.v1.Dispatcher/Subscribe": 1,
	} {
		if got[k] != v {
			t.Errorf("dux_grpc_requests_total{%s} = %v, want %v", k, got[k], v)
		}
	}
	if got := series(t, reg, "dux_grpc_request_duration_seconds")["code=NotFound,method=/dux.v1.State/Get"]; got != 2 {
		t.Errorf("duration samples for NotFound Get = %v, want 2", got)
	}
}

func TestRoute_StripsTheMethod(t *testing.T) {
	for in, want := range map[string]string{
		"":                              "unmatched",
		"/":                             "/",
		"GET /v1/cluster/leader":        "/v1/cluster/leader",
		"POST /v1/lease/{id}/keepalive": "/v1/lease/{id}/keepalive",
		"/v1/state/{key...}":            "/v1/state/{key...}",
	} {
		if got := route(in); got != want {
			t.Errorf("route(%q) = %q, want %q", in, got, want)
		}
	}
}
