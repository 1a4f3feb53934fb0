package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/dispatch"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/rpc"
	"github.com/dux-io/dux/scheduler"
	"github.com/dux-io/dux/ui"
)

type agentFlags struct {
	cfg       cluster.Config
	dispatch  dispatch.Config
	logLevel  string
	logFormat string
	debug     bool
	labels    []string
	cpu       float64
	memory    string
	encrypt   string
	noDocker  bool
	sched     scheduler.LeaderConfig
	exec      scheduler.ExecutorConfig
}

func newAgentCmd() *cobra.Command {
	f := &agentFlags{cfg: cluster.DefaultConfig(), dispatch: dispatch.DefaultConfig()}
	f.cfg.DataDir = ""
	host, _ := os.Hostname()
	f.cfg.Name = host
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a Dux member",
		Long: `Run a Dux member: Raft, gossip, and the gRPC and HTTP APIs.

Every flag can also be set by an environment variable DUX_<FLAG>, for
example DUX_DATA_DIR or DUX_BOOTSTRAP_EXPECT.`,
		Example: `  duxd agent --dev
  duxd agent --name a --data-dir /var/lib/dux --bootstrap-expect 3 --join 10.0.0.2:7703`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return err
			}
			return runAgent(cmd.Context(), f, cmd.OutOrStdout())
		},
	}
	c := &f.cfg
	fl := cmd.Flags()
	fl.StringVar(&c.Name, "name", c.Name, "unique member name (Raft server ID)")
	fl.StringVar(&c.DataDir, "data-dir", "", "directory of the Raft log and snapshots (default ~/.local/share/dux/<name>)")
	fl.StringVar(&c.GRPCAddr, "grpc-addr", c.GRPCAddr, "gRPC API listen address")
	fl.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP API listen address")
	fl.StringVar(&c.RaftAddr, "raft-addr", c.RaftAddr, "Raft transport listen address")
	fl.StringVar(&c.GossipAddr, "gossip-addr", c.GossipAddr, "gossip (memberlist) listen address, TCP and UDP")
	fl.StringVar(&c.Advertise, "advertise", "", "IP address other members use to reach this one (default: each listen address)")
	fl.IntVar(&c.BootstrapExpect, "bootstrap-expect", 0, "bootstrap a new cluster once this many servers have found each other")
	fl.StringSliceVar(&c.Join, "join", nil, "gossip address of a member to join (repeatable); retried until one answers")
	fl.BoolVar(&c.Dev, "dev", false, "run a single member that bootstraps at once")
	fl.IntVar(&c.Voters, "voters", c.Voters, "number of Raft voters (3 or 5); other members are non-voters")
	fl.IntVar(&c.MaxValueBytes, "max-value-bytes", c.MaxValueBytes, "largest value accepted, in bytes")
	fl.Uint64Var(&c.SnapshotThreshold, "raft-snapshot-threshold", c.SnapshotThreshold, "log entries between Raft snapshots")
	fl.DurationVar(&c.SnapshotInterval, "raft-snapshot-interval", c.SnapshotInterval, "how often Raft checks whether to snapshot")
	fl.Uint64Var(&c.TrailingLogs, "raft-trailing-logs", c.TrailingLogs, "log entries kept after a snapshot")
	fl.DurationVar(&c.HeartbeatTimeout, "raft-heartbeat-timeout", c.HeartbeatTimeout, "Raft heartbeat timeout")
	fl.DurationVar(&c.ElectionTimeout, "raft-election-timeout", c.ElectionTimeout, "Raft election timeout")
	fl.StringArrayVar(&f.labels, "label", nil, "a label of this host, key=value (repeatable)")
	fl.Float64Var(&f.cpu, "cpu", 0, "CPU cores this host offers (default: detected)")
	fl.StringVar(&f.memory, "memory", "", "memory this host offers, e.g. 8GiB or 512MiB (default: detected)")
	fl.StringVar(&f.encrypt, "encrypt", "", "gossip encryption key: base64 of 16, 24 or 32 bytes (see duxd keygen)")
	fl.DurationVar(&c.DeadServerTimeout, "dead-server-timeout", c.DeadServerTimeout, "how long a failed member stays in Raft before it is removed")
	fl.IntVar(&c.MinQuorum, "min-quorum", c.MinQuorum, "never remove failed voters below this many voters")
	fl.StringVar(&c.GossipProfile, "gossip-profile", c.GossipProfile, "gossip timing: lan, or local for members on one host (faster failure detection)")
	fl.DurationVar(&c.DeadNodeReclaimTime, "dead-node-reclaim-time", c.DeadNodeReclaimTime, "how long a failed member's name stays bound to its old address")
	d := &f.dispatch
	fl.IntVar(&d.WindowEvents, "dispatch-window-events", d.WindowEvents, "events kept for subscribers to resume from")
	fl.Int64Var(&d.WindowBytes, "dispatch-window-bytes", d.WindowBytes, "bytes of events kept for subscribers to resume from")
	fl.IntVar(&d.MaxLag, "dispatch-max-lag", d.MaxLag, "events a subscriber may fall behind before it is cut off (at most the window)")
	fl.BoolVar(&c.UnsafeStaleReads, "unsafe-stale-reads", false, "TESTS ONLY: serve linearizable reads from local state (breaks linearizability)")
	fl.MarkHidden("unsafe-stale-reads")
	fl.BoolVar(&f.noDocker, "no-docker", false, "run no containers on this host: it takes no allocations")
	fl.DurationVar(&f.sched.Interval, "scheduler-interval", 5*time.Second, "how often the leader plans when nothing changed")
	fl.DurationVar(&f.exec.Interval, "executor-interval", 3*time.Second, "how often this host compares its containers with its allocations when nothing changed")
	fl.IntVar(&f.exec.Parallelism, "executor-parallelism", 4, "containers this host removes at once, and creates or starts at once (pulls do not count)")
	fl.BoolVar(&f.debug, "enable-debug", false, "serve Go's profiler under /debug/pprof/ on the HTTP address")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: want text or json", format)}
}

func defaultDataDir(name string) string {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return filepath.Join("dux-data", name)
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "dux", name)
}

func runAgent(ctx context.Context, f *agentFlags, out io.Writer) error {
	logger, err := newLogger(os.Stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	cfg := f.cfg
	cfg.Logger = logger
	cfg.Version = version
	if err := f.host(&cfg); err != nil {
		return usageError{err}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir(cfg.Name)
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	// Listen before anything starts, so an address in use fails fast and clearly.
	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc-addr %s: %w", cfg.GRPCAddr, err)
	}
	defer grpcLis.Close()
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http-addr %s: %w", cfg.HTTPAddr, err)
	}
	defer httpLis.Close()

	dcfg := f.dispatch
	dcfg.Logger = logger.With("subsystem", "dispatch")
	if err := dcfg.Validate(); err != nil {
		return usageError{err}
	}
	store := fsm.New()
	hub, err := dispatch.New(dcfg, store)
	if err != nil {
		return err
	}
	defer hub.Close()
	store.SetHook(hub.Applied)
	store.SetRestoreHook(hub.Restored)
	cfg.CheckValue = scheduler.CheckValue
	rt, err := f.docker()
	if err != nil {
		return usageError{err}
	}
	node, err := cluster.New(cfg, store)
	if err != nil {
		if rt != nil {
			rt.Close()
		}
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopScheduler := startScheduler(ctx, f, node, hub, rt, logger)

	api := rpc.Config{Backend: node, Dispatcher: hub, RegisterInternal: node.RegisterInternal, MaxValueBytes: cfg.MaxValueBytes, Logger: logger,
		Graph: scheduler.NewGraphSource(node, hub, cfg.Name)}
	withMetrics, err := setupMetrics(&api, node, hub, logger)
	if err != nil {
		node.Shutdown()
		return err
	}
	grpcSrv := rpc.NewGRPC(ctx, api)
	handler := withUI(rpc.NewHTTP(api))
	if f.debug {
		handler = withPprof(handler)
	}
	handler = withMetrics(handler) // GET /metrics, and counts every request
	httpSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- grpcSrv.Serve(grpcLis) }()
	go func() { errc <- httpSrv.Serve(httpLis) }()

	fmt.Fprintf(out, "Dux agent %q is running (version %s).\n", cfg.Name, version)
	fmt.Fprintf(out, "  gRPC API:  %s\n", cfg.GRPCAddr)
	fmt.Fprintf(out, "  HTTP API:  http://%s/v1/\n", cfg.HTTPAddr)
	fmt.Fprintf(out, "  Web UI:    http://%s%s\n", cfg.HTTPAddr, ui.Prefix)
	fmt.Fprintf(out, "  Raft:      %s   Gossip: %s\n", cfg.RaftAddr, cfg.GossipAddr)
	fmt.Fprintf(out, "  Data dir:  %s\n", cfg.DataDir)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "signal", context.Cause(ctx))
	case <-node.Left():
		logger.Info("left the cluster; shutting down")
	case serveErr = <-node.Fatal():
	case serveErr = <-errc:
		logger.Error("server failed", "error", serveErr)
	}
	stopScheduler()
	return shutdown(node, grpcSrv, httpSrv, serveErr)
}

// docker returns the client of this host's Docker Engine (DOCKER_HOST,
// or the default socket), or nil with --no-docker. The engine need not
// answer yet: the executor asks on every pass, and the host advertises
// what it finds, so an engine that starts after the agent is used, and
// one that stops is noticed. An environment that names no valid engine
// (a malformed DOCKER_HOST, say) is an error.
func (f *agentFlags) docker() (*scheduler.DockerRuntime, error) {
	if f.noDocker {
		return nil, nil
	}
	rt, err := scheduler.NewDockerRuntime()
	if err != nil {
		return nil, fmt.Errorf("%w (or run with --no-docker)", err)
	}
	return rt, nil
}

// startScheduler registers the scheduler's leader loop and, given a
// Docker runtime, starts this host's executor, which gossips whether the
// engine answers (the host takes replicas only while it does). The
// function it returns stops the executor.
func startScheduler(ctx context.Context, f *agentFlags, node *cluster.Node, hub *dispatch.Hub, rt *scheduler.DockerRuntime, logger *slog.Logger) func() {
	sc := f.sched
	sc.Name, sc.Logger = node.Name(), logger
	node.RunWhileLeader("scheduler", scheduler.NewLeader(node, hub, sc).Run)
	if rt == nil {
		return func() {}
	}
	ec := f.exec
	ec.Host, ec.Logger = node.Name(), logger
	ec.EngineChanged = func(up bool) {
		if err := node.SetDocker(up); err != nil {
			logger.Warn("advertising whether the Docker engine answers", "docker", up, "error", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		scheduler.NewExecutor(node, hub, rt, ec).Run(ctx)
	}()
	return func() { cancel(); <-done; rt.Close() }
}

// withPprof serves Go's profiler under /debug/pprof/ beside h.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// Everything else goes to h as it came: a ServeMux would clean the path,
	// and malformed keys must reach the API to be refused.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			mux.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// withUI serves the web UI under /ui/ beside h, and sends a browser that
// opens the member's bare address (GET /) there. Every other request goes
// to h as it came, so unknown API paths keep their JSON 404.
func withUI(h http.Handler) http.Handler {
	assets := ui.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, ui.Prefix):
			assets.ServeHTTP(w, r)
		case r.URL.Path == strings.TrimSuffix(ui.Prefix, "/"),
			r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, ui.Prefix, http.StatusFound)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// shutdown stops the member first (a leader hands over leadership), then
// the APIs, so that no request is cut off before the member is done.
func shutdown(node *cluster.Node, g *grpc.Server, h *http.Server, cause error) error {
	errs := []error{cause, node.Shutdown()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.Stop()
	}
	return errors.Join(errs...)
}
