package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPercentile_NearestRank(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}}
	for _, c := range cases {
		if got := percentile(lat, c.q); got != c.want {
			t.Errorf("p%v: got %s, want %s", c.q*100, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("empty: got %s, want 0", got)
	}
	if got := percentile(lat[:1], 0.99); got != time.Millisecond {
		t.Errorf("one sample: got %s", got)
	}
}

func TestBenchValue_IsJSONOfSize(t *testing.T) {
	for _, n := range []int{2, 3, 256} {
		v := benchValue(n)
		if len(v) != n || !json.Valid(v) {
			t.Errorf("benchValue(%d): got %d bytes %q", n, len(v), v)
		}
	}
}

type benchJSON struct {
	Op          string  `json:"op"`
	Consistency string  `json:"consistency"`
	Ops         int64   `json:"ops"`
	Errors      int64   `json:"errors"`
	OpsPerSec   float64 `json:"ops_per_second"`
	Latency     struct {
		P50 float64 `json:"p50_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"`
}

func TestCLI_BenchPutAndGet(t *testing.T) {
	f, addr := startFakeMember(t)
	out, _, err := cliRun(t, "", "bench", "put", "--addr", addr, "--clients", "4", "--conns", "2",
		"--total", "200", "--key-space", "10", "--value-size", "32", "--json")
	if err != nil {
		t.Fatalf("bench put: %v", err)
	}
	var r benchJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json is not one JSON object: %v\n%s", err, out)
	}
	if r.Op != "put" || r.Ops != 200 || r.Errors != 0 || r.OpsPerSec <= 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P50 {
		t.Errorf("bench put: got %+v", r)
	}
	if got := len(f.puts); got != 200 {
		t.Errorf("puts at the server: got %d, want 200", got)
	}
	if p := f.puts[0]; len(p.Value) != 32 || !strings.HasPrefix(p.Key, "/bench/") || p.Origin != "bench" {
		t.Errorf("put request: got %v", p)
	}

	f.puts = nil
	out, stderr, err := cliRun(t, "", "bench", "get", "--addr", addr, "--clients", "3", "--conns", "8",
		"--total", "100", "--key-space", "25", "--consistency", "stale", "--key-prefix", "/b/")
	if err != nil {
		t.Fatalf("bench get: %v", err)
	}
	if got := len(f.puts); got != 25 {
		t.Errorf("bench get wrote %d keys first, want the key space, 25", got)
	}
	if got := len(f.gets); got != 100 {
		t.Errorf("gets at the server: got %d, want 100", got)
	}
	for _, want := range []string{"bench get (stale): 3 clients on 3 connections", "ops:      100", "errors:   0", "p99", "CPU/op"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench get output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "writing 25 keys under /b/") {
		t.Errorf("bench get: stderr %q", stderr)
	}
}

func TestCLI_BenchDuration(t *testing.T) {
	_, addr := startFakeMember(t)
	start := time.Now()
	out, _, err := cliRun(t, "", "bench", "put", "--addr", addr, "--clients", "2", "--duration", "200ms", "--json")
	if err != nil {
		t.Fatalf("bench put --duration: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %s, want about 200ms", el)
	}
	var r benchJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Ops == 0 {
		t.Errorf("bench --duration: got %+v %v", r, err)
	}
}
