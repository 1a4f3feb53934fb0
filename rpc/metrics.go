package rpc

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics counts and times the requests the gRPC and HTTP servers handle.
// Labels are bounded: gRPC methods are those registered (gRPC refuses
// others before any interceptor runs), HTTP routes are ServeMux patterns,
// never raw paths, and HTTP methods outside the usual ones count as "other".
type Metrics struct {
	grpcRequests *prometheus.CounterVec
	grpcDuration *prometheus.HistogramVec
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

// NewMetrics creates the request metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		grpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dux_grpc_requests_total",
			Help: "gRPC requests handled, by full method and status code.",
		}, []string{"method", "code"}),
		grpcDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dux_grpc_request_duration_seconds",
			Help: "Time to handle a gRPC request (for a stream, its whole life), by full method and status code.",
			// 0.5 ms to 33 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17),
		}, []string{"method", "code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dux_http_requests_total",
			Help: "HTTP requests handled, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dux_http_request_duration_seconds",
			Help: "Time to handle an HTTP request (for a server-sent event stream, its whole life), by method, route pattern and status code.",
			// 0.5 ms to 33 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17),
		}, []string{"method", "route", "code"}),
	}
	for _, c := range []prometheus.Collector{m.grpcRequests, m.grpcDuration, m.httpRequests, m.httpDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// The interceptors come first in the chain, so they see the status the
// client gets, after unaryErrors and streamErrors mapped the error.
func (m *Metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	m.observeGRPC(info.FullMethod, err, start)
	return resp, err
}

func (m *Metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	start := time.Now()
	err := h(srv, ss)
	m.observeGRPC(info.FullMethod, err, start)
	return err
}

func (m *Metrics) observeGRPC(method string, err error, start time.Time) {
	code := status.Code(err).String()
	m.grpcRequests.WithLabelValues(method, code).Inc()
	m.grpcDuration.WithLabelValues(method, code).Observe(time.Since(start).Seconds())
}

// initGRPC makes every method of s show in the request counter at zero
// with code OK before its first request, so that rates start from zero.
func (m *Metrics) initGRPC(s *grpc.Server) {
	for service, info := range s.GetServiceInfo() {
		for _, method := range info.Methods {
			m.grpcRequests.WithLabelValues("/"+service+"/"+method.Name, "OK")
		}
	}
}

// HTTP counts and times the requests h serves. The route label is the
// pattern of the ServeMux that served the request (Request.Pattern, which
// ServeMux sets on the request it is given), without its method; handlers
// that route without a ServeMux set Request.Pattern themselves, as NewHTTP
// does for /v1/state and /v1/publish. A request that no pattern matched
// counts under the route "unmatched".
func (m *Metrics) HTTP(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		labels := []string{httpMethod(r.Method), route(r.Pattern), strconv.Itoa(code)}
		m.httpRequests.WithLabelValues(labels...).Inc()
		m.httpDuration.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	})
}

// route is a ServeMux pattern without its method: "GET /v1/lease/{id}"
// becomes "/v1/lease/{id}".
func route(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		return strings.TrimLeft(pattern[i+1:], " \t")
	}
	return pattern
}

func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

// statusWriter records the status code. It passes Flush on, which the
// server-sent event stream needs, and Unwrap, for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx responses are not the final status
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
