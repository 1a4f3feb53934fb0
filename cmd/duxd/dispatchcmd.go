package main

import (
	"bufio"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/rpc"
)

func init() {
	clientCommands = append(clientCommands, newPublishCmd, newSubscribeCmd)
}

func newPublishCmd() *cobra.Command {
	var f clientFlags
	var origin string
	cmd := &cobra.Command{
		Use:   "publish CHANNEL JSON",
		Short: "Publish a message on a channel",
		Long: `Publish a JSON message on a channel. It goes through the Raft log and reaches
every subscriber of the channel on every member, in the same order as state
events; it is not stored. JSON may be - to read it from stdin.`,
		Example: `  duxd publish /deploy/web '{"version":"1.2.3"}'`,
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			payload, err := readValue(args[1], cmd.InOrStdin())
			if err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			rev, err := c.Publish(ctx, args[0], payload, client.WithOrigin(origin))
			if err != nil {
				return f.fail(err)
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"channel": args[0], "revision": rev})
			}
			t := newTable(cmd.OutOrStdout(), "CHANNEL", "REVISION")
			t.row(args[0], u64(rev))
			return t.flush()
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	cmd.Flags().StringVar(&origin, "origin", "cli", "name of the publisher, carried in the event")
	return cmd
}

func newSubscribeCmd() *cobra.Command {
	var f clientFlags
	var (
		from                  uint64
		state, latest, prevKV bool
		progress              time.Duration
		name                  string
	)
	cmd := &cobra.Command{
		Use:   "subscribe CHANNEL...",
		Short: "Print the events of channels, one JSON object a line",
		Long: `Print the events of one or more channels as they happen, one JSON object a
line: {"revision","type","key","value",...} with type put, delete, expire,
message, state, synced, progress or resync. A channel ending in "/" is a
prefix: /hosts/ is every channel under /hosts.

The subscription survives disconnects: when its member fails or cuts it
off, it reconnects to another member in --addr and resumes right after the
last event it printed. It runs until interrupted (or --timeout).`,
		Example: `  duxd subscribe /hosts/ --state
  duxd subscribe /config/app/db /deploy/web --from 1200
  duxd subscribe /jobs/ --name component/worker`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			var opts []client.SubscribeOption
			if state {
				opts = append(opts, client.WithState())
			}
			if from != 0 {
				opts = append(opts, client.FromRevision(from))
			}
			if latest {
				opts = append(opts, client.Latest())
			}
			if prevKV {
				opts = append(opts, client.WithPrevKVEvents())
			}
			if progress != 0 {
				opts = append(opts, client.WithProgress(progress))
			}
			if name != "" {
				opts = append(opts, client.WithName(name))
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			sub := c.Subscribe(ctx, args, opts...)
			errOut := cmd.ErrOrStderr()
			sub.OnReconnect = func(err error) {
				fmt.Fprintf(errOut, "subscription interrupted (%v); resuming after revision %d\n", err, sub.Revision())
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			for {
				ev, err := sub.Recv()
				if err != nil {
					out.Flush()
					if ctx.Err() != nil && cmd.Context().Err() == nil && f.timeout > 0 {
						return nil // --timeout ended a subscription that worked
					}
					return f.fail(err)
				}
				line, err := rpc.EventJSON(ev)
				if err != nil {
					return err
				}
				out.Write(line)
				out.WriteByte('\n')
				out.Flush()
			}
		},
	}
	f.register(cmd, 0, false)
	fl := cmd.Flags()
	fl.Uint64Var(&from, "from", 0, "resume after this revision (default: from now)")
	fl.BoolVar(&state, "state", false, "print the channels' current state first, then a synced marker")
	fl.BoolVar(&latest, "latest", false, "level-triggered: coalesce to the newest event per key while behind")
	fl.BoolVar(&prevKV, "prev-kv", false, "include the previous value in put, delete and expire events")
	fl.DurationVar(&progress, "progress", 0, "print a progress event after this long idle (default 1s; negative: never)")
	fl.StringVar(&name, "name", "", "name this subscriber in the graph of who reads what (duxd graph) while it runs")
	return cmd
}
