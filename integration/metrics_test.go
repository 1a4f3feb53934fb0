//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

// metricFamilies are every family docs/OPERATIONS.md promises, by type.
var metricFamilies = map[string]dto.MetricType{
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
	"process_resident_memory_bytes":       dto.MetricType_GAUGE,
}

// scrapeMetrics gets an agent's /metrics over HTTP and parses it with the
// Prometheus text parser; output that does not parse fails the test.
func scrapeMetrics(t *testing.T, a *agent) metricSet {
	t.Helper()
	resp, err := http.Get("http://" + a.http + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", a.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", a.name, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("scrape %s: Content-Type %q, want the text format", a.name, ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: the output does not parse: %v", a.name, err)
	}
	return metricSet(fams)
}

type metricSet map[string]*dto.MetricFamily

// get returns the value of the first series of name whose labels include
// the given name=value pairs (the sample count for a histogram), and
// whether there is one.
func (s metricSet) get(name string, labels ...string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
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
		}
	}
	return 0, false
}

func (s metricSet) value(name string, labels ...string) float64 {
	v, _ := s.get(name, labels...)
	return v
}

// Rule (issue 7, acceptance 2): /metrics parses with the Prometheus text
// parser and holds the Raft, FSM, dispatcher, gossip, gRPC and HTTP
// families, with values that match what the cluster did: on the leader and
// on a follower alike.
func TestMetrics_ThreeMemberCluster(t *testing.T) {
	agents := startCluster(t, 3, "--gossip-profile", "local")
	leader := waitLeader(t, agents)
	follower := followers(agents, leader)[0]
	ctx := ctxT(t, 60*time.Second)

	// A subscriber on the follower, held open while it is scraped.
	sub := newClient(t, follower).Subscribe(ctx, []string{"/metrics-test/"}, client.WithState())
	if _, err := collect(sub, 0); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	// Writes through every member: those that reach a follower are
	// forwarded to the leader.
	const keys = 30
	var lastRev uint64
	var written float64
	for i := range keys {
		a := agents[i%len(agents)]
		key, value := fmt.Sprintf("/metrics-test/k%02d", i), fmt.Sprintf(`{"i":%d}`, i)
		resp, err := a.state().Put(ctx, &proto.PutRequest{Key: key, Value: []byte(value)})
		if err != nil {
			t.Fatalf("put %s on %s: %v", key, a.name, err)
		}
		lastRev = resp.Revision
		written += float64(len(key) + len(value))
	}
	if _, err := collect(sub, lastRev); err != nil {
		t.Fatalf("receive the writes on the follower: %v", err)
	}

	// HTTP requests: a read of a key, and a first scrape, on every member.
	for _, a := range agents {
		resp, err := http.Get("http://" + a.http + "/v1/state/metrics-test/k00")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v1/state/metrics-test/k00 on %s: %s", a.name, resp.Status)
		}
		scrapeMetrics(t, a)
	}

	// Every member reports the same cluster once gossip and Raft settle.
	var sets map[string]metricSet
	eventually(t, 20*time.Second, func() error {
		sets = map[string]metricSet{}
		leaders := 0
		for _, a := range agents {
			s := scrapeMetrics(t, a)
			sets[a.name] = s
			leaders += int(s.value("dux_raft_state", "state", "leader"))
			switch {
			case s.value("dux_fsm_revision") < float64(lastRev):
				return fmt.Errorf("%s: revision %v, want at least %d", a.name, s.value("dux_fsm_revision"), lastRev)
			case s.value("dux_gossip_members", "status", "alive") != 3:
				return fmt.Errorf("%s: %v members alive, want 3", a.name, s.value("dux_gossip_members", "status", "alive"))
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d members report dux_raft_state{state=\"leader\"} 1, want exactly 1", leaders)
		}
		return nil
	})

	for _, a := range []*agent{leader, follower} {
		s := sets[a.name]
		for name, typ := range metricFamilies {
			if f := s[name]; f == nil {
				t.Errorf("%s: family %s missing", a.name, name)
			} else if f.GetType() != typ {
				t.Errorf("%s: family %s is a %v, want a %v", a.name, name, f.GetType(), typ)
			}
		}
	}

	atLeast := func(a *agent, min float64, name string, labels ...string) {
		t.Helper()
		if v, ok := sets[a.name].get(name, labels...); !ok || v < min {
			t.Errorf("%s: %s%v = %v (present %v), want at least %v", a.name, name, labels, v, ok, min)
		}
	}
	equal := func(a *agent, want float64, name string, labels ...string) {
		t.Helper()
		if v, ok := sets[a.name].get(name, labels...); !ok || v != want {
			t.Errorf("%s: %s%v = %v (present %v), want %v", a.name, name, labels, v, ok, want)
		}
	}
	var puts float64
	term := sets[leader.name].value("dux_raft_term")
	for _, a := range agents {
		s := sets[a.name]
		role := "follower"
		if a == leader {
			role = "leader"
		}
		equal(a, 1, "dux_raft_state", "state", role)
		equal(a, term, "dux_raft_term")
		atLeast(a, 1, "dux_raft_term")
		atLeast(a, float64(lastRev), "dux_raft_commit_index")
		atLeast(a, float64(lastRev), "dux_raft_applied_index")
		if s.value("dux_raft_applied_index") > s.value("dux_raft_commit_index") ||
			s.value("dux_raft_commit_index") > s.value("dux_raft_last_log_index") {
			t.Errorf("%s: applied %v, commit %v, last log %v: want applied <= commit <= last", a.name,
				s.value("dux_raft_applied_index"), s.value("dux_raft_commit_index"), s.value("dux_raft_last_log_index"))
		}
		equal(a, 3, "dux_raft_servers", "suffrage", "voter")
		atLeast(a, 1, "dux_raft_leader_changes_total")
		atLeast(a, keys, "dux_fsm_keys")
		atLeast(a, written, "dux_fsm_bytes")
		atLeast(a, 1, "dux_fsm_apply_duration_seconds")
		equal(a, 0, "dux_gossip_members", "status", "failed")
		equal(a, 0, "dux_dispatch_cutoffs_total")
		atLeast(a, 1, "dux_dispatch_window_events")
		atLeast(a, 1, "dux_dispatch_window_bytes")
		atLeast(a, 1, "dux_http_requests_total", "route", "/metrics", "code", "200")
		equal(a, 1, "dux_http_requests_total", "method", "GET", "route", "/v1/state/{key...}", "code", "200")
		atLeast(a, 1, "dux_http_request_duration_seconds", "method", "GET", "route", "/v1/state/{key...}", "code", "200")
		puts += s.value("dux_grpc_requests_total", "method", "/dux.v1.State/Put", "code", "OK")
	}
	// Each member served a third of the puts.
	atLeast(leader, keys/3, "dux_grpc_requests_total", "method", "/dux.v1.State/Put", "code", "OK")
	atLeast(follower, keys/3, "dux_grpc_requests_total", "method", "/dux.v1.State/Put", "code", "OK")
	atLeast(leader, keys/3, "dux_grpc_request_duration_seconds", "method", "/dux.v1.State/Put", "code", "OK")
	if puts < keys {
		t.Errorf("dux_grpc_requests_total for Put summed over the members = %v, want at least %d", puts, keys)
	}
	// The leader applied every write, the forwarded ones included; the
	// followers' writes reached it in batches over Internal.ApplyBatch
	// (one call may carry several).
	atLeast(leader, keys, "dux_raft_apply_duration_seconds")
	atLeast(leader, 1, "dux_grpc_requests_total", "method", "/dux.v1.Internal/ApplyBatch", "code", "OK")
	// The follower's subscriber is open and got the writes.
	atLeast(follower, 1, "dux_dispatch_subscribers")
	atLeast(follower, keys, "dux_dispatch_events_sent_total")
}
