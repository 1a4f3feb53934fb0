package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
)

// defaultAddr is the gRPC address of a member on this host.
const defaultAddr = "127.0.0.1:7700"

// clientFlags are the flags every client subcommand shares.
type clientFlags struct {
	addrs   []string
	timeout time.Duration
	output  string // "" when the command has no --output
}

// register adds --addr and --timeout (default timeout) to cmd, and -o/--output
// when withOutput is set.
func (f *clientFlags) register(cmd *cobra.Command, timeout time.Duration, withOutput bool) {
	fl := cmd.Flags()
	fl.StringSliceVar(&f.addrs, "addr", []string{defaultAddr},
		"gRPC address of a member; a comma-separated list spreads requests and rides out a member that is down (env DUX_ADDR)")
	fl.DurationVar(&f.timeout, "timeout", timeout, "how long the command may take; 0 for no limit (env DUX_TIMEOUT)")
	if withOutput {
		fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json (env DUX_OUTPUT)")
	}
}

// sharedFlagNames are the only flags a client subcommand takes from the
// environment: a stray DUX_PREFIX or DUX_CAS must never change what a
// delete does.
var sharedFlagNames = []string{"addr", "timeout", "output"}

// prepare fills the shared flags from DUX_* variables and checks them. Every
// problem it finds is a usage error.
func (f *clientFlags) prepare(cmd *cobra.Command) error {
	shared := &cobra.Command{Use: cmd.Name()}
	for _, name := range sharedFlagNames {
		if fl := cmd.Flags().Lookup(name); fl != nil {
			shared.Flags().AddFlag(fl) // the same *pflag.Flag: setting it sets ours
		}
	}
	if err := bindEnv(shared); err != nil {
		return err
	}
	var addrs []string
	for _, a := range f.addrs {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return usageError{fmt.Errorf("--addr: no member address given")}
	}
	f.addrs = addrs
	if f.timeout < 0 {
		return usageError{fmt.Errorf("--timeout %s: must not be negative", f.timeout)}
	}
	if cmd.Flags().Lookup("output") != nil && f.output != "table" && f.output != "json" {
		return usageError{fmt.Errorf("--output %q: want table or json", f.output)}
	}
	return nil
}

// connect returns a client of the members in --addr and a context that ends
// after --timeout. Call done when finished.
func (f *clientFlags) connect(cmd *cobra.Command) (ctx context.Context, c *client.Client, done func(), err error) {
	c, err = client.New(client.Config{Endpoints: f.addrs})
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := cmd.Context(), context.CancelFunc(func() {})
	if ctx == nil {
		ctx = context.Background()
	}
	if f.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
	}
	return ctx, c, func() { cancel(); c.Close() }, nil
}

// fail presents err from a request to the cluster for the terminal.
func (f *clientFlags) fail(err error) error {
	return presentError(err, f.addrs, f.timeout)
}

// usageArgs makes an argument-count error a usage error (exit code 2), with
// the same hint as a bad flag.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
		}
		return nil
	}
}

// groupCmd is a command that only holds subcommands: run bare, it prints
// its help; with an argument, that is an unknown subcommand.
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subs...)
	return cmd
}
