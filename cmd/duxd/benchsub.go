package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

type benchSubFlags struct {
	conn        clientFlags
	subscribers int
	connsPer    int
	rate        int
	total       int
	keyPrefix   string
	json        bool
}

func newBenchSubscribeCmd() *cobra.Command {
	f := &benchSubFlags{}
	cmd := &cobra.Command{
		Use:   "subscribe",
		Short: "Measure delivery to many subscribers while one writer writes at a fixed rate",
		Long: `Open --subscribers subscriptions spread evenly over the members in --addr,
write --total keys at --rate writes per second, and measure, for every
delivery, the time from the write's acknowledgement to its arrival (0 when
it arrived first). Reports delivered/expected and the latency percentiles.`,
		Example: "  duxd bench subscribe --addr 127.0.0.1:7710,127.0.0.1:7720,127.0.0.1:7730 --subscribers 1000 --rate 1000 --total 10000",
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.conn.prepare(cmd); err != nil {
				return err
			}
			if f.subscribers < 1 || f.connsPer < 1 || f.rate < 1 || f.total < 1 {
				return usageError{fmt.Errorf("--subscribers, --conns-per-member, --rate and --total must be at least 1")}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := runBenchSubscribe(ctx, f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			res.print(cmd.OutOrStdout())
			return nil
		},
	}
	f.conn.register(cmd, defaultClientTimeout, false)
	fl := cmd.Flags()
	fl.IntVar(&f.subscribers, "subscribers", 1000, "subscriptions, spread evenly over the members")
	fl.IntVar(&f.connsPer, "conns-per-member", 4, "gRPC connections per member that the subscriptions share")
	fl.IntVar(&f.rate, "rate", 1000, "writes per second")
	fl.IntVar(&f.total, "total", 10000, "number of writes")
	fl.StringVar(&f.keyPrefix, "key-prefix", "/bench-sub/", "prefix of the written keys, and the channel subscribed to")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	return cmd
}

type benchSubResult struct {
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

func (r *benchSubResult) print(w io.Writer) {
	fmt.Fprintf(w, "bench subscribe: %d subscribers, %d writes at %d/s\n", r.Subscribers, r.Writes, r.Rate)
	fmt.Fprintf(w, "  delivered:  %d of %d (%.4f%%)\n", r.Delivered, r.Expected, 100*float64(r.Delivered)/float64(max(r.Expected, 1)))
	fmt.Fprintf(w, "  write errors: %d\n", r.WriteErrors)
	fmt.Fprintf(w, "  elapsed:    %.3fs\n", r.ElapsedSeconds)
	fmt.Fprintf(w, "  ack->delivery latency: p50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms\n",
		r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
}

func runBenchSubscribe(ctx context.Context, f *benchSubFlags, progress io.Writer) (*benchSubResult, error) {
	var conns []*client.Client
	for _, addr := range f.conn.addrs {
		for range f.connsPer {
			c, err := client.New(client.Config{Endpoints: []string{addr}})
			if err != nil {
				return nil, err
			}
			defer c.Close()
			conns = append(conns, c)
		}
	}
	writer, err := client.New(client.Config{Endpoints: f.conn.addrs})
	if err != nil {
		return nil, err
	}
	defer writer.Close()
	start, err := writer.Put(ctx, f.keyPrefix+"start", []byte(`0`))
	if err != nil {
		return nil, f.conn.fail(err)
	}
	// acks[i] is when write i was acknowledged, in ns since base.
	base := time.Now()
	acks := make([]atomic.Int64, f.total)
	// arrivals[s][i] is when subscriber s received write i.
	arrivals := make([][]int64, f.subscribers)
	var delivered atomic.Int64
	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	var wg sync.WaitGroup
	var opened sync.WaitGroup
	for s := range arrivals {
		arrivals[s] = make([]int64, f.total)
		wg.Add(1)
		opened.Add(1)
		go func(s int) {
			defer wg.Done()
			sub := conns[s%len(conns)].Subscribe(subCtx, []string{f.keyPrefix + "w/"},
				client.FromRevision(start), client.WithProgress(200*time.Millisecond))
			first := true
			got := 0
			for got < f.total {
				ev, err := sub.Recv()
				if first {
					first = false
					opened.Done()
				}
				if err != nil {
					return
				}
				if ev.Type != proto.Event_PUT {
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
		}(s)
	}
	opened.Wait() // every subscription delivered its first progress notice
	fmt.Fprintf(progress, "%d subscriptions open; writing %d keys at %d/s\n", f.subscribers, f.total, f.rate)
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
			wctx, cancel := context.WithTimeout(ctx, f.conn.timeout)
			defer cancel()
			if _, err := writer.Put(wctx, fmt.Sprintf("%sw/%06d", f.keyPrefix, i), []byte(strconv.Itoa(i))); err != nil {
				writeErrs.Add(1)
				return
			}
			acks[i].Store(int64(time.Since(base)))
		}(i)
	}
	wwg.Wait()
	// Wait for the deliveries still in flight, as long as they progress.
	want := int64(f.subscribers) * int64(f.total-int(writeErrs.Load()))
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

	res := &benchSubResult{Subscribers: f.subscribers, Rate: f.rate, Writes: f.total, Expected: want,
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
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	res.Latency.P50, res.Latency.P90 = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.90))
	res.Latency.P99, res.Latency.Max = ms(percentile(lat, 0.99)), ms(percentile(lat, 1))
	return res, nil
}
