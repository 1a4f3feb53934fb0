package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/graph"
	"github.com/dux-io/dux/rpc"
)

func init() { clientCommands = append(clientCommands, newGraphCmd) }

func newGraphCmd() *cobra.Command {
	cmd, _ := simpleCmd("graph", "Show who reads and who writes which prefixes, and every cycle",
		`Show the graph of who reads and who writes which key prefixes and channels:
one line per use (an actor reads or writes a prefix), then one line per
cycle, a set of actors that feed each other, starting "cycle:". A program
must not consume the state it updates; a cycle shows where one does.

Uses come from three sources: declared (the reads and writes of component
specs), builtin (Dux's own scheduler, executors and membership sensor) and
observed (the channels of subscribers that name themselves, and the
prefixes written under an origin in the last 10 minutes). Observed reads
are those of the subscribers connected to the member that answers.

The scheduler and the executors form a loop by design, which converges;
its line starts "expected cycle:". The command succeeds whatever the
cycles: read the "cycle:" lines, or -o json (the JSON of GET /v1/graph).`,
		cobra.NoArgs, func(cmd *cobra.Command, f *clientFlags, c *client.Client, _ []string) error {
			resp, err := c.Graph(cmd.Context())
			if err != nil {
				return err
			}
			g := rpc.GraphFromProto(resp)
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), g)
			}
			return writeGraph(cmd.OutOrStdout(), g)
		})
	return cmd
}

// writeGraph prints the edges as a table, then a line per cycle.
func writeGraph(w io.Writer, g *graph.Graph) error {
	t := newTable(w, "ACTOR", "ACCESS", "PREFIX", "SOURCE", "CYCLE")
	for _, e := range g.Edges {
		access := "reads"
		if e.Access == graph.Write {
			access = "writes"
		}
		var sources []string
		for _, s := range e.Sources {
			sources = append(sources, string(s))
		}
		cycle := ""
		if e.Cycle > 0 {
			cycle = "#" + strconv.Itoa(e.Cycle)
		}
		t.row(e.Actor(), access, e.Prefix(), strings.Join(sources, "+"), cycle)
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(g.Cycles) == 0 {
		fmt.Fprintln(w, "no cycles")
	}
	for _, c := range g.Cycles {
		// A user's cycle starts its line with "cycle:"; the scheduler's
		// own loop with "expected cycle:".
		line := fmt.Sprintf("cycle: #%d %s via %s", c.ID, strings.Join(c.Actors, ", "), strings.Join(c.Prefixes, ", "))
		if len(c.Actors) == 1 {
			line += " (it reads what it writes)"
		}
		if c.Expected {
			line = fmt.Sprintf("expected %s (%s)", line, c.Note)
		}
		fmt.Fprintln(w, line)
	}
	window := time.Duration(g.ObservedWindowSeconds) * time.Second
	_, err := fmt.Fprintf(w, "\nObserved by member %s: its named subscribers, and the writes of the last %s.\n", g.Member, window)
	return err
}
