// Command etcdbench is the etcd counterpart of `duxd bench`: the same load
// generator (one goroutine per client, each with one request in flight,
// clients spread over --conns connections each balanced over every endpoint,
// latencies recorded per goroutine and merged at the end), the same key and
// value shapes and the same JSON result, so that scripts/bench-etcd.sh can
// put etcd's figures next to Dux's.
//
//	etcdbench put   --endpoints 127.0.0.1:23790,... --clients 64 --total 100000
//	etcdbench get   --endpoints ... --consistency linearizable|serializable
//	etcdbench watch --endpoints ... --watchers 1000 --rate 1000 --total 10000
//
// It lives in its own Go module so that Dux itself never depends on etcd.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: etcdbench put|get|watch [flags]; etcdbench CMD -h lists the flags`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch op := os.Args[1]; op {
	case "put", "get":
		err = mainBench(ctx, op, os.Args[2:])
	case "watch":
		err = mainWatch(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdbench:", err)
		os.Exit(1)
	}
}

// newClient connects to endpoints; the etcd client balances its requests
// round-robin over every endpoint it can reach.
func newClient(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", strings.Join(endpoints, ","), err)
	}
	return c, nil
}

func splitEndpoints(s string) []string {
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps
}

type benchFlags struct {
	endpoints   []string
	timeout     time.Duration
	clients     int
	conns       int
	total       int64
	duration    time.Duration
	keySpace    int
	valueSize   int
	consistency string
	keyPrefix   string
	sequential  bool
	json        bool
}

// benchResult has the fields, and the JSON names, of duxd bench's result.
type benchResult struct {
	Op             string  `json:"op"`
	Consistency    string  `json:"consistency,omitempty"`
	Clients        int     `json:"clients"`
	Conns          int     `json:"conns"`
	KeySpace       int     `json:"key_space"`
	ValueSize      int     `json:"value_size"`
	Ops            int64   `json:"ops"`
	Errors         int64   `json:"errors"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	OpsPerSecond   float64 `json:"ops_per_second"`
	Latency        struct {
		P50 float64 `json:"p50_ms"`
		P90 float64 `json:"p90_ms"`
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"`
	CPUPerOpMicros float64 `json:"cpu_per_op_us"`
	FirstError     string  `json:"first_error,omitempty"`
}

func (r *benchResult) print(w io.Writer) {
	what := r.Op
	if r.Consistency != "" {
		what += " (" + r.Consistency + ")"
	}
	fmt.Fprintf(w, "etcdbench %s: %d clients on %d connections, %d keys, %d-byte values\n",
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

func mainBench(ctx context.Context, op string, args []string) error {
	f := &benchFlags{}
	fs := flag.NewFlagSet(op, flag.ExitOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs or host:port of the members")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout of each operation")
	fs.IntVar(&f.clients, "clients", 64, "concurrent clients, each with one request in flight")
	fs.IntVar(&f.conns, "conns", 8, "client connections (each to every member) the clients are spread over")
	fs.Int64Var(&f.total, "total", 100000, "number of operations")
	fs.DurationVar(&f.duration, "duration", 0, "run for this long instead of --total operations")
	fs.IntVar(&f.keySpace, "key-space", 10000, "number of distinct keys")
	fs.IntVar(&f.valueSize, "value-size", 256, "size of each value in bytes (a JSON string, as duxd bench writes)")
	fs.StringVar(&f.keyPrefix, "key-prefix", "/bench/", "prefix of the keys")
	fs.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	if op == "get" {
		fs.StringVar(&f.consistency, "consistency", "linearizable", "read consistency: linearizable or serializable")
	}
	if op == "put" {
		fs.BoolVar(&f.sequential, "sequential", false,
			"write keys 0 to --key-space - 1 in order, each once (--total is the key space; no --duration)")
	}
	fs.Parse(args)
	f.endpoints = splitEndpoints(*endpoints)
	switch {
	case len(f.endpoints) == 0:
		return errors.New("--endpoints: none given")
	case f.clients < 1 || f.conns < 1 || f.keySpace < 1:
		return errors.New("--clients, --conns and --key-space must be at least 1")
	case f.duration == 0 && f.total < 1:
		return errors.New("--total must be at least 1")
	case f.valueSize < 2:
		return errors.New("--value-size must be at least 2")
	case op == "get" && f.consistency != "linearizable" && f.consistency != "serializable":
		return fmt.Errorf("--consistency %q: want linearizable or serializable", f.consistency)
	}
	if f.sequential {
		if f.duration > 0 {
			return errors.New("--sequential writes each key once: it takes no --duration")
		}
		f.total = int64(f.keySpace)
	}
	f.conns = min(f.conns, f.clients)
	res, err := runBench(ctx, f, op, os.Stderr)
	if err != nil {
		return err
	}
	if f.json {
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			return err
		}
	} else {
		res.print(os.Stdout)
	}
	if res.Ops == 0 && res.Errors > 0 {
		return fmt.Errorf("every operation failed; the first: %s", res.FirstError)
	}
	return nil
}

type benchOp func(ctx context.Context, c *clientv3.Client, key string) error

func runBench(ctx context.Context, f *benchFlags, op string, progress io.Writer) (*benchResult, error) {
	conns := make([]*clientv3.Client, f.conns)
	for i := range conns {
		c, err := newClient(f.endpoints)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		conns[i] = c
	}
	keys := make([]string, f.keySpace)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%08d", f.keyPrefix, i)
	}
	value := string(benchValue(f.valueSize)) // one value for all
	put := func(ctx context.Context, c *clientv3.Client, key string) error {
		_, err := c.Put(ctx, key, value)
		return err
	}

	res := &benchResult{Op: op, Clients: f.clients, Conns: f.conns, KeySpace: f.keySpace, ValueSize: f.valueSize}
	run := put
	if f.sequential {
		var next atomic.Int64
		run = func(ctx context.Context, c *clientv3.Client, _ string) error {
			return put(ctx, c, keys[next.Add(1)-1])
		}
	}
	if op == "get" {
		res.Consistency = f.consistency
		fmt.Fprintf(progress, "writing %d keys under %s...\n", len(keys), f.keyPrefix)
		var next atomic.Int64
		fill := func(ctx context.Context, c *clientv3.Client, _ string) error {
			return put(ctx, c, keys[next.Add(1)-1])
		}
		pre := benchLoad(ctx, conns, f.clients, int64(len(keys)), 0, f.timeout, keys, fill)
		if pre.errs > 0 {
			return nil, fmt.Errorf("write the key space: %w", pre.firstErr)
		}
		var opts []clientv3.OpOption
		if f.consistency == "serializable" {
			opts = []clientv3.OpOption{clientv3.WithSerializable()}
		}
		run = func(ctx context.Context, c *clientv3.Client, key string) error {
			resp, err := c.Get(ctx, key, opts...)
			if err == nil && len(resp.Kvs) == 0 {
				err = fmt.Errorf("key %s not found", key)
			}
			return err
		}
	}

	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	out := benchLoad(ctx, conns, f.clients, f.total, f.duration, f.timeout, keys, run)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)

	res.Ops = int64(len(out.lat))
	res.Errors = out.errs
	res.ElapsedSeconds = out.elapsed.Seconds()
	if out.elapsed > 0 {
		res.OpsPerSecond = float64(res.Ops) / out.elapsed.Seconds()
	}
	slices.Sort(out.lat)
	res.Latency.P50 = ms(percentile(out.lat, 0.50))
	res.Latency.P90 = ms(percentile(out.lat, 0.90))
	res.Latency.P99 = ms(percentile(out.lat, 0.99))
	res.Latency.Max = ms(percentile(out.lat, 1))
	if n := res.Ops + res.Errors; n > 0 {
		cpu := rusageCPU(&after) - rusageCPU(&before)
		res.CPUPerOpMicros = float64(cpu) / float64(time.Microsecond) / float64(n)
	}
	if out.firstErr != nil {
		res.FirstError = out.firstErr.Error()
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchValue is a JSON string of exactly size bytes, as duxd bench writes.
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
	lat      []time.Duration
	errs     int64
	firstErr error
	elapsed  time.Duration
}

// benchLoad is duxd bench's load loop: clients goroutines, client i on
// connection i%len(conns), each on uniformly random keys, until total
// operations were started or duration has passed.
func benchLoad(ctx context.Context, conns []*clientv3.Client, clients int, total int64, duration, timeout time.Duration,
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
					return
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

// watchResult has the fields, and the JSON names, of duxd bench
// subscribe's result.
type watchResult struct {
	Subscribers    int     `json:"subscribers"`
	Rate           int     `json:"rate"`
	Writes         int     `json:"writes"`
	Expected       int64   `json:"expected"`
	Delivered      int64   `json:"delivered"`
	WriteErrors    int64   `json:"write_errors"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	Latency        struct {
		P50 float64 `json:"p50_ms"`
		P90 float64 `json:"p90_ms"`
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"`
}

type watchFlags struct {
	endpoints    []string
	timeout      time.Duration
	watchers     int
	connsPer     int
	rate         int
	total        int
	keyPrefix    string
	sharedStream bool
	json         bool
}

func mainWatch(ctx context.Context, args []string) error {
	f := &watchFlags{}
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs or host:port of the members")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout of each write")
	fs.IntVar(&f.watchers, "watchers", 1000, "watchers, spread evenly over the members")
	fs.IntVar(&f.connsPer, "conns-per-member", 4, "client connections per member that the watchers share")
	fs.IntVar(&f.rate, "rate", 1000, "writes per second")
	fs.IntVar(&f.total, "total", 10000, "number of writes")
	fs.StringVar(&f.keyPrefix, "key-prefix", "/bench-sub/", "prefix of the written keys, and of the watched range")
	fs.BoolVar(&f.sharedStream, "shared-stream", false,
		"let the watchers of one connection share one gRPC watch stream (etcd's default) instead of one stream each (as a Dux subscription has)")
	fs.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	fs.Parse(args)
	f.endpoints = splitEndpoints(*endpoints)
	if len(f.endpoints) == 0 || f.watchers < 1 || f.connsPer < 1 || f.rate < 1 || f.total < 1 {
		return errors.New("--endpoints, --watchers, --conns-per-member, --rate and --total must be given and at least 1")
	}
	res, err := runWatch(ctx, f, os.Stderr)
	if err != nil {
		return err
	}
	if f.json {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("etcdbench watch: %d watchers, %d writes at %d/s\n", res.Subscribers, res.Writes, res.Rate)
	fmt.Printf("  delivered:  %d of %d (%.4f%%)\n", res.Delivered, res.Expected, 100*float64(res.Delivered)/float64(max(res.Expected, 1)))
	fmt.Printf("  write errors: %d\n", res.WriteErrors)
	fmt.Printf("  elapsed:    %.3fs\n", res.ElapsedSeconds)
	fmt.Printf("  ack->delivery latency: p50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms\n",
		res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max)
	return nil
}

// runWatch mirrors duxd bench subscribe: watchers spread over
// --conns-per-member connections to each member, one writer writing --total
// keys at --rate, and for every delivery the time from the write's
// acknowledgement to its arrival (0 when it arrived first).
func runWatch(ctx context.Context, f *watchFlags, progress io.Writer) (*watchResult, error) {
	var conns []*clientv3.Client
	for _, ep := range f.endpoints {
		for range f.connsPer {
			c, err := newClient([]string{ep})
			if err != nil {
				return nil, err
			}
			defer c.Close()
			conns = append(conns, c)
		}
	}
	writer, err := newClient(f.endpoints)
	if err != nil {
		return nil, err
	}
	defer writer.Close()
	wctx, cancel := context.WithTimeout(ctx, f.timeout)
	resp, err := writer.Put(wctx, f.keyPrefix+"start", "0")
	cancel()
	if err != nil {
		return nil, err
	}
	start := resp.Header.Revision

	base := time.Now()
	acks := make([]atomic.Int64, f.total)
	arrivals := make([][]int64, f.watchers)
	var delivered atomic.Int64
	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	var wg, opened sync.WaitGroup
	for s := range arrivals {
		arrivals[s] = make([]int64, f.total)
		wg.Add(1)
		opened.Add(1)
		go func(s int) {
			defer wg.Done()
			wctx := subCtx
			if !f.sharedStream {
				// The etcd client multiplexes the watches of one connection
				// whose contexts carry the same metadata on one stream.
				wctx = metadata.AppendToOutgoingContext(subCtx, "etcdbench-watcher", strconv.Itoa(s))
			}
			wch := conns[s%len(conns)].Watch(wctx, f.keyPrefix+"w/", clientv3.WithPrefix(),
				clientv3.WithRev(start+1), clientv3.WithCreatedNotify())
			first := true
			got := 0
			for wr := range wch {
				if first {
					first = false
					opened.Done()
				}
				if wr.Err() != nil {
					fmt.Fprintf(progress, "watcher %d: %v\n", s, wr.Err())
					continue
				}
				for _, ev := range wr.Events {
					if ev.Type != clientv3.EventTypePut {
						continue
					}
					i, err := strconv.Atoi(string(ev.Kv.Value))
					if err != nil || i < 0 || i >= f.total {
						continue
					}
					arrivals[s][i] = int64(time.Since(base))
					got++
					delivered.Add(1)
				}
				if got >= f.total {
					return
				}
			}
			if first {
				opened.Done()
			}
		}(s)
	}
	opened.Wait()
	fmt.Fprintf(progress, "%d watchers open; writing %d keys at %d/s\n", f.watchers, f.total, f.rate)
	var writeErrs atomic.Int64
	began := time.Now()
	interval := time.Second / time.Duration(f.rate)
	var wwg sync.WaitGroup
	for i := range f.total {
		if d := time.Until(began.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wwg.Add(1)
		go func(i int) {
			defer wwg.Done()
			wctx, cancel := context.WithTimeout(ctx, f.timeout)
			defer cancel()
			if _, err := writer.Put(wctx, fmt.Sprintf("%sw/%06d", f.keyPrefix, i), strconv.Itoa(i)); err != nil {
				writeErrs.Add(1)
				return
			}
			acks[i].Store(int64(time.Since(base)))
		}(i)
	}
	wwg.Wait()
	want := int64(f.watchers) * int64(f.total-int(writeErrs.Load()))
	for last, idle := delivered.Load(), 0; delivered.Load() < want && idle < 50 && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		if n := delivered.Load(); n == last {
			idle++
		} else {
			last, idle = n, 0
		}
	}
	elapsed := time.Since(began)
	cancelSubs()
	wg.Wait()

	res := &watchResult{Subscribers: f.watchers, Rate: f.rate, Writes: f.total, Expected: want,
		Delivered: delivered.Load(), WriteErrors: writeErrs.Load(), ElapsedSeconds: elapsed.Seconds()}
	lat := make([]time.Duration, 0, res.Delivered)
	for s := range arrivals {
		for i, at := range arrivals[s] {
			ack := acks[i].Load()
			if at == 0 || ack == 0 {
				continue
			}
			lat = append(lat, time.Duration(max(at-ack, 0)))
		}
	}
	slices.Sort(lat)
	res.Latency.P50, res.Latency.P90 = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.90))
	res.Latency.P99, res.Latency.Max = ms(percentile(lat, 0.99)), ms(percentile(lat, 1))
	return res, nil
}
