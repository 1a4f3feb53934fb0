package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

func init() { clientCommands = append(clientCommands, newRaftCmd) }

func newRaftCmd() *cobra.Command {
	return groupCmd("raft", "Inspect and operate the Raft cluster", newRaftPeersCmd(), newRaftLeaderCmd(),
		newRaftRemovePeerCmd(), newRaftTransferLeaderCmd())
}

func newRaftPeersCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the Raft servers (voters and non-voters) and mark the leader",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			resp, err := c.RaftConfiguration(ctx)
			if err != nil {
				return f.fail(err)
			}
			return writePeers(cmd.OutOrStdout(), f.output, resp)
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	return cmd
}

// writePeers prints the Raft configuration; the JSON is the HTTP API's.
func writePeers(w io.Writer, format string, resp *proto.RaftConfigurationResponse) error {
	if format == "json" {
		type server struct {
			ID       string `json:"id"`
			Address  string `json:"address"`
			Suffrage string `json:"suffrage"`
			Leader   bool   `json:"leader"`
		}
		out := struct {
			Index   uint64   `json:"index"`
			Servers []server `json:"servers"`
		}{Index: resp.Index, Servers: []server{}}
		for _, s := range resp.Servers {
			out.Servers = append(out.Servers, server{s.Id, s.Address, s.Suffrage, s.Leader})
		}
		return writeJSON(w, out)
	}
	t := newTable(w, "ID", "ADDRESS", "SUFFRAGE", "LEADER")
	for _, s := range resp.Servers {
		mark := ""
		if s.Leader {
			mark = "*"
		}
		t.row(s.Id, s.Address, s.Suffrage, mark)
	}
	return t.flush()
}

func newRaftLeaderCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "leader",
		Short: "Print the Raft leader as the answering member knows it",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			l, err := c.Leader(ctx)
			if err != nil {
				return f.fail(err)
			}
			if l.Id == "" {
				return f.fail(fmt.Errorf("%w: the member knows of no leader", client.ErrUnavailable))
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"id": l.Id, "raft_address": l.RaftAddress,
					"grpc_address": l.GrpcAddress, "http_address": l.HttpAddress, "term": l.Term})
			}
			t := newTable(cmd.OutOrStdout(), "ID", "RAFT_ADDRESS", "GRPC_ADDRESS", "HTTP_ADDRESS", "TERM")
			t.row(l.Id, l.RaftAddress, l.GrpcAddress, l.HttpAddress, u64(l.Term))
			return t.flush()
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	return cmd
}
