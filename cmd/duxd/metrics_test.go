package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dux-io/dux/client"
)

// testFreePort returns a port that was free on 127.0.0.1 for TCP and UDP
// (gossip needs both).
func testFreePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// devAgent runs `duxd agent --dev` in this process until the test ends,
// and returns its gRPC and HTTP addresses once it is ready.
func devAgent(t *testing.T) (grpcAddr, httpAddr string) {
	t.Helper()
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", testFreePort(t)) }
	grpcAddr, httpAddr = addr(), addr()
	root := newRootCmd()
	root.SetArgs([]string{"agent", "--dev", "--name", "m1", "--data-dir", filepath.Join(t.TempDir(), "m1"),
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--raft-addr", addr(), "--gossip-addr", addr(),
		"--gossip-profile", "local", "--log-level", "error"})
	root.SetOut(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return grpcAddr, httpAddr
			}
		}
		select {
		case err := <-done:
			t.Fatalf("agent stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape gets /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, httpAddr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// families are every family docs/OPERATIONS.md promises, by type.
var families = map[string]dto.MetricType{
	"dux_raft_state":                      dto.MetricType_GAUGE,
	"dux_raft_term":                       dto.MetricType_GAUGE,
	"dux_raft_commit_index":               dto.MetricType_GAUGE,
	"dux_raft_applied_index":              dto.MetricType_GAUGE,
	"dux_raft_last_log_index":             dto.MetricType_GAUGE,
	"dux_raft_servers":                    dto.MetricType_GAUGE,
	"dux_raft_apply_duration_seconds":     dto.MetricType_HISTOGRAM,
	"dux_raft_leader_changes_total":       dto.MetricType_COUNTER,
	"dux_fsm_keys":                        dto.MetricType_GAUGE,
	"dux_fsm_bytes":                       dto.MetricType_GAUGE,
	"dux_fsm_revision":                    dto.MetricType_GAUGE,
	"dux_fsm_apply_duration_seconds":      dto.MetricType_HISTOGRAM,
	"dux_dispatch_subscribers":            dto.MetricType_GAUGE,
	"dux_dispatch_events_sent_total":      dto.MetricType_COUNTER,
	"dux_dispatch_cutoffs_total":          dto.MetricType_COUNTER,
	"dux_dispatch_window_events":          dto.MetricType_GAUGE,
	"dux_dispatch_window_bytes":           dto.MetricType_GAUGE,
	"dux_dispatch_window_oldest_revision": dto.MetricType_GAUGE,
	"dux_gossip_members":                  dto.MetricType_GAUGE,
	"dux_grpc_requests_total":             dto.MetricType_COUNTER,
	"dux_grpc_request_duration_seconds":   dto.MetricType_HISTOGRAM,
	"dux_http_requests_total":             dto.MetricType_COUNTER,
	"dux_http_request_duration_seconds":   dto.MetricType_HISTOGRAM,
	"go_goroutines":                       dto.MetricType_GAUGE,
	"process_cpu_seconds_total":           dto.MetricType_COUNTER,
}

// Rule: GET /metrics on an agent parses with the Prometheus text parser and
// holds every documented family with figures that follow what happened.
func TestAgent_MetricsEndpoint(t *testing.T) {
	grpcAddr, httpAddr := devAgent(t)
	c, err := client.New(client.Config{Endpoints: []string{grpcAddr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := c.Put(ctx, fmt.Sprintf("/m/k%d", i), []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+httpAddr+"/v1/state/m/http/raw-key-42", strings.NewReader(`true`))
	for _, r := range []*http.Request{req, mustGet(t, "http://"+httpAddr+"/v1/cluster/leader"), mustGet(t, "http://"+httpAddr+"/no/such/path/7")} {
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	fams := scrape(t, httpAddr)
	for name, typ := range families {
		f := fams[name]
		if f == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("family %s is a %v, want a %v", name, f.GetType(), typ)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"dux_raft_state", map[string]string{"state": "leader"}, 1},
		{"dux_raft_servers", map[string]string{"suffrage": "voter"}, 1},
		{"dux_raft_leader_changes_total", nil, 1},
		{"dux_raft_apply_duration_seconds", nil, 4}, // the barrier and four puts
		{"dux_fsm_keys", nil, 4},
		{"dux_fsm_bytes", nil, 4 * float64(len("/m/k0")+len(`{"n":1}`))},
		{"dux_fsm_apply_duration_seconds", nil, 1},
		{"dux_gossip_members", map[string]string{"status": "alive"}, 1},
		{"dux_grpc_requests_total", map[string]string{"method": "/dux.v1.State/Put", "code": "OK"}, 3},
		{"dux_grpc_request_duration_seconds", map[string]string{"method": "/dux.v1.State/Put", "code": "OK"}, 3},
		{"dux_http_requests_total", map[string]string{"method": "PUT", "route": "/v1/state/{key...}", "code": "200"}, 1},
		{"dux_http_requests_total", map[string]string{"method": "GET", "route": "/v1/cluster/leader", "code": "200"}, 1},
		{"dux_http_requests_total", map[string]string{"method": "GET", "route": "/", "code": "404"}, 1},
		{"dux_http_requests_total", map[string]string{"method": "GET", "route": "/readyz", "code": "200"}, 1},
	}
	for _, c := range checks {
		v, ok := value(fams, c.name, c.labels)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}
	if v, _ := value(fams, "dux_raft_state", map[string]string{"state": "follower"}); v != 0 {
		t.Errorf(`dux_raft_state{state="follower"} = %v on the only member, want 0`, v)
	}
	applied, _ := value(fams, "dux_raft_applied_index", nil)
	commit, _ := value(fams, "dux_raft_commit_index", nil)
	if applied < 5 || applied > commit {
		t.Errorf("applied index %v, commit index %v: want 5 <= applied <= commit", applied, commit)
	}
	// Routes are patterns, never raw paths: the key and the unknown path
	// must not show up as labels.
	for _, name := range []string{"dux_http_requests_total", "dux_http_request_duration_seconds"} {
		for _, m := range fams[name].Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "raw-key-42") || strings.Contains(l.GetValue(), "/no/such") {
					t.Errorf("%s has a raw path in label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
