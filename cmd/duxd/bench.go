package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
)

func init() { clientCommands = append(clientCommands, newBenchCmd) }

type benchFlags struct {
	conn        clientFlags // --addr, and --timeout per operation
	clients     int
	conns       int
	total       int64
	duration    time.Duration
	keySpace    int
	valueSize   int
	consistency string
	keyPrefix   string
	json        bool
	cpuProfile  string
	sequential  bool
}

func newBenchCmd() *cobra.Command {
	cmd := groupCmd("bench", "Measure a running cluster's throughput and latency",
		newBenchOpCmd("put", "Write random keys of the key space"),
		newBenchOpCmd("get", "Read random keys of the key space (written once first)"),
		newBenchSubscribeCmd())
	cmd.Long = `Measure a running cluster's throughput and latency with concurrent gRPC
clients, spread over --conns connections, each connection balanced over
every member in --addr. Only run it against a cluster you own: it writes
--key-space keys under --key-prefix.`
	return cmd
}

func newBenchOpCmd(op, short string) *cobra.Command {
	f := &benchFlags{}
	cmd := &cobra.Command{
		Use:     op,
		Short:   short,
		Example: fmt.Sprintf("  duxd bench %s --addr 127.0.0.1:7700,127.0.0.1:7710 --clients 64 --total 100000", op),
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(cmd, op); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := runBench(ctx, f, op, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if f.json {
				if err := writeJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				res.print(cmd.OutOrStdout())
			}
			if res.Ops == 0 && res.Errors > 0 {
				return fmt.Errorf("every operation failed; the first: %s", res.FirstError)
			}
			return nil
		},
	}
	f.conn.register(cmd, defaultClientTimeout, false)
	cmd.Flags().Lookup("timeout").Usage = "timeout of each operation (env DUX_TIMEOUT)"
	fl := cmd.Flags()
	fl.IntVar(&f.clients, "clients", 64, "concurrent clients, each with one request in flight")
	fl.IntVar(&f.conns, "conns", 8, "gRPC connections (each to every member) the clients are spread over")
	fl.Int64Var(&f.total, "total", 100000, "number of operations")
	fl.DurationVar(&f.duration, "duration", 0, "run for this long instead of --total operations")
	fl.IntVar(&f.keySpace, "key-space", 10000, "number of distinct keys")
	fl.IntVar(&f.valueSize, "value-size", 256, "size of each value in bytes (a JSON string)")
	fl.StringVar(&f.keyPrefix, "key-prefix", "/bench/", "prefix of the keys")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	fl.StringVar(&f.cpuProfile, "cpu-profile", "", "write a CPU profile of the measured phase to this file")
	fl.MarkHidden("cpu-profile")
	if op == "get" {
		fl.StringVar(&f.consistency, "consistency", "linearizable", "read consistency: linearizable or stale")
	}
	if op == "put" {
		fl.BoolVar(&f.sequential, "sequential", false,
			"write keys 0 to --key-space - 1 in order, each once (--total is the key space; no --duration)")
	}
	return cmd
}

func (f *benchFlags) validate(cmd *cobra.Command, op string) error {
	if err := f.conn.prepare(cmd); err != nil {
		return err
	}
	bad := func(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }
	switch {
	case f.clients < 1:
		return bad("--clients %d: must be at least 1", f.clients)
	case f.conns < 1:
		return bad("--conns %d: must be at least 1", f.conns)
	case f.duration < 0:
		return bad("--duration %s: must not be negative", f.duration)
	case f.duration == 0 && f.total < 1:
		return bad("--total %d: must be at least 1", f.total)
	case f.keySpace < 1:
		return bad("--key-space %d: must be at least 1", f.keySpace)
	case f.valueSize < 2:
		return bad("--value-size %d: must be at least 2 (the quotes of a JSON string)", f.valueSize)
	case !strings.HasPrefix(f.keyPrefix, "/"):
		return bad("--key-prefix %q: must start with /", f.keyPrefix)
	}
	if op == "get" && f.consistency != "linearizable" && f.consistency != "stale" {
		return bad("--consistency %q: want linearizable or stale", f.consistency)
	}
	if f.sequential {
		if f.duration > 0 {
			return bad("--sequential writes each key once: it takes no --duration")
		}
		f.total = int64(f.keySpace)
	}
	f.conns = min(f.conns, f.clients)
	return nil
}

// benchResult is what a run measured.
type benchResult struct {
	Op             string  `json:"op"`
	Consistency    string  `json:"consistency,omitempty"`
	Clients        int     `json:"clients"`
	Conns          int     `json:"conns"`
	KeySpace       int     `json:"key_space"`
	ValueSize      int     `json:"value_size"`
	Ops            int64   `json:"ops"`    // operations that succeeded
	Errors         int64   `json:"errors"` // operations that failed
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	OpsPerSecond   float64 `json:"ops_per_second"`
	Latency        struct {
		P50 float64 `json:"p50_ms"`
		P90 float64 `json:"p90_ms"`
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"` // of the operations that succeeded
	// CPUPerOpMicros is the user and system CPU time of this process per
	// operation: what the load generator itself costs.
	CPUPerOpMicros float64 `json:"cpu_per_op_us"`
	FirstError     string  `json:"first_error,omitempty"`
}

func (r *benchResult) print(w io.Writer) {
	what := r.Op
	if r.Consistency != "" {
		what += " (" + r.Consistency + ")"
	}
	fmt.Fprintf(w, "bench %s: %d clients on %d connections, %d keys, %d-byte values\n",
		what, r.Clients, r.Conns, r.KeySpace, r.ValueSize)
	fmt.Fprintf(w, "  ops:      %d\n", r.Ops)
	fmt.Fprintf(w, "  errors:   %d\n", r.Errors)
	fmt.Fprintf(w, "  elapsed:  %.3fs\n", r.ElapsedSeconds)
	fmt.Fprintf(w, "  ops/s:    %.0f\n", r.OpsPerSecond)
	fmt.Fprintf(w, "  latency:  p50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms\n",
		r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	fmt.Fprintf(w, "  CPU/op:   %.1fµs (this client)\n", r.CPUPerOpMicros)
	if r.FirstError != "" {
		fmt.Fprintf(w, "  first error: %s\n", r.FirstError)
	}
}

// benchOp is one operation of a client on a key.
type benchOp func(ctx context.Context, c *client.Client, key string) error

func runBench(ctx context.Context, f *benchFlags, op string, progress io.Writer) (*benchResult, error) {
	conns := make([]*client.Client, f.conns)
	for i := range conns {
		c, err := client.New(client.Config{Endpoints: f.conn.addrs, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, f.conn.fail(err)
		}
		defer c.Close()
		conns[i] = c
	}
	keys := make([]string, f.keySpace)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%08d", f.keyPrefix, i)
	}
	value := benchValue(f.valueSize) // one value for all: nothing allocated per operation
	putOpts := []client.PutOption{client.WithOrigin("bench")}
	put := func(ctx context.Context, c *client.Client, key string) error {
		_, err := c.Put(ctx, key, value, putOpts...)
		return err
	}

	res := &benchResult{Op: op, Clients: f.clients, Conns: f.conns, KeySpace: f.keySpace, ValueSize: f.valueSize}
	run := put
	if f.sequential {
		var next atomic.Int64
		run = func(ctx context.Context, c *client.Client, _ string) error {
			return put(ctx, c, keys[next.Add(1)-1])
		}
	}
	if op == "get" {
		res.Consistency = f.consistency
		fmt.Fprintf(progress, "writing %d keys under %s...\n", len(keys), f.keyPrefix)
		var next atomic.Int64
		fill := func(ctx context.Context, c *client.Client, _ string) error {
			return put(ctx, c, keys[next.Add(1)-1])
		}
		// Every key exactly once; any failure fails the run.
		pre := benchLoad(ctx, conns, f.clients, int64(len(keys)), 0, f.conn.timeout, keys, fill)
		if pre.errs > 0 {
			return nil, fmt.Errorf("write the key space: %w", f.conn.fail(pre.firstErr))
		}
		var opts []client.ReadOption
		if f.consistency == "stale" {
			opts = []client.ReadOption{client.Stale()}
		}
		run = func(ctx context.Context, c *client.Client, key string) error {
			_, _, err := c.Get(ctx, key, opts...)
			return err
		}
	}

	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	out := benchLoad(ctx, conns, f.clients, f.total, f.duration, f.conn.timeout, keys, run)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)

	res.Ops = int64(len(out.lat))
	res.Errors = out.errs
	res.ElapsedSeconds = out.elapsed.Seconds()
	if out.elapsed > 0 {
		res.OpsPerSecond = float64(res.Ops) / out.elapsed.Seconds()
	}
	slices.Sort(out.lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.Latency.P50 = ms(percentile(out.lat, 0.50))
	res.Latency.P90 = ms(percentile(out.lat, 0.90))
	res.Latency.P99 = ms(percentile(out.lat, 0.99))
	res.Latency.Max = ms(percentile(out.lat, 1))
	if n := res.Ops + res.Errors; n > 0 {
		cpu := rusageCPU(&after) - rusageCPU(&before)
		res.CPUPerOpMicros = float64(cpu) / float64(time.Microsecond) / float64(n)
	}
	if out.firstErr != nil {
		res.FirstError = f.conn.fail(out.firstErr).Error()
	}
	return res, nil
}

// benchValue is a JSON string of exactly size bytes.
func benchValue(size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = 'x'
	}
	v[0], v[size-1] = '"', '"'
	return v
}

func rusageCPU(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

// percentile is the nearest-rank q-quantile of sorted latencies.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

type loadResult struct {
	lat      []time.Duration // of successful operations, unsorted
	errs     int64
	firstErr error
	elapsed  time.Duration
}

// benchLoad runs op from clients goroutines, client i on connection
// i%len(conns), each on uniformly random keys, until total operations were
// started or, if duration is set, until it has passed. Each goroutine records
// latencies into its own preallocated slice; they are merged at the end.
func benchLoad(ctx context.Context, conns []*client.Client, clients int, total int64, duration, timeout time.Duration,
	keys []string, op benchOp) loadResult {
	type worker struct {
		lat      []time.Duration
		errs     int64
		firstErr error
	}
	workers := make([]worker, clients)
	perWorker := 1024
	if duration == 0 {
		perWorker = int(total/int64(clients)) + 1
	}
	var started atomic.Int64
	var stop atomic.Bool
	if duration > 0 {
		t := time.AfterFunc(duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	seed := uint64(time.Now().UnixNano())
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &workers[i]
		w.lat = make([]time.Duration, 0, perWorker)
		c := conns[i%len(conns)]
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if duration > 0 {
					if stop.Load() {
						return
					}
				} else if started.Add(1) > total {
					return
				}
				key := keys[rng.IntN(len(keys))]
				opCtx, cancel := ctx, context.CancelFunc(nil)
				if timeout > 0 {
					opCtx, cancel = context.WithTimeout(ctx, timeout)
				}
				t0 := time.Now()
				err := op(opCtx, c, key)
				d := time.Since(t0)
				if cancel != nil {
					cancel()
				}
				switch {
				case err == nil:
					w.lat = append(w.lat, d)
				case ctx.Err() != nil:
					return // interrupted: not the cluster's failure
				default:
					w.errs++
					if w.firstErr == nil {
						w.firstErr = err
					}
				}
			}
		}()
	}
	wg.Wait()
	out := loadResult{elapsed: time.Since(start)}
	n := 0
	for i := range workers {
		n += len(workers[i].lat)
	}
	out.lat = make([]time.Duration, 0, n)
	for i := range workers {
		w := &workers[i]
		out.lat = append(out.lat, w.lat...)
		out.errs += w.errs
		if out.firstErr == nil {
			out.firstErr = w.firstErr
		}
	}
	return out
}
