package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
	"github.com/dux-io/dux/rpc"
)

func init() {
	clientCommands = append(clientCommands, newMembersCmd, newJoinCmd, newLeaveCmd, newKeygenCmd)
}

// simpleCmd is a client command with a fixed argument check whose work is run.
func simpleCmd(use, short, long string, args cobra.PositionalArgs,
	run func(cmd *cobra.Command, f *clientFlags, c *client.Client, args []string) error) (*cobra.Command, *clientFlags) {
	f := &clientFlags{}
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Args: usageArgs(args),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			cmd.SetContext(ctx)
			if err := run(cmd, f, c, args); err != nil {
				return f.fail(err)
			}
			return nil
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	return cmd, f
}

func newMembersCmd() *cobra.Command {
	cmd, _ := simpleCmd("members", "List the members: health, Raft role, leader, addresses, labels",
		"", cobra.NoArgs, func(cmd *cobra.Command, f *clientFlags, c *client.Client, _ []string) error {
			members, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			return writeMembers(cmd.OutOrStdout(), f.output, members)
		})
	return cmd
}

// writeMembers prints members; the JSON is GET /v1/cluster/members.
func writeMembers(w io.Writer, format string, members []*proto.MemberInfo) error {
	if format == "json" {
		b, err := rpc.MembersJSON(members)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	t := newTable(w, "NAME", "STATUS", "RAFT", "LEADER", "GRPC", "GOSSIP", "LABELS")
	for _, m := range members {
		mark := ""
		if m.Leader {
			mark = "*"
		}
		var labels []string
		for k, v := range m.Labels {
			labels = append(labels, k+"="+v)
		}
		slices.Sort(labels)
		t.row(m.Name, m.Status, m.Raft, mark, m.Addresses["grpc"], m.Addresses["gossip"], strings.Join(labels, ","))
	}
	return t.flush()
}

func newJoinCmd() *cobra.Command {
	cmd, _ := simpleCmd("join ADDR...", "Make a running agent join a cluster",
		`Ask the agent at --addr (one member) to join the gossip of the members at the
given gossip addresses (host:port, default port 7703). The leader then adds
it to Raft.`, cobra.MinimumNArgs(1), func(cmd *cobra.Command, f *clientFlags, c *client.Client, args []string) error {
			if len(f.addrs) != 1 {
				return usageError{fmt.Errorf("--addr: name the one agent that should join")}
			}
			k, err := c.Join(cmd.Context(), args)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Joined %d of %d: %s\n", k, len(args), strings.Join(args, ", "))
			return nil
		})
	return cmd
}

func newLeaveCmd() *cobra.Command {
	cmd, _ := simpleCmd("leave", "Make an agent leave the cluster gracefully and stop",
		`Ask the agent at --addr (one member) to leave: a leader hands leadership to
another voter first, then the agent is removed from Raft, leaves gossip (the
others mark it left) and stops.`, cobra.NoArgs, func(cmd *cobra.Command, f *clientFlags, c *client.Client, _ []string) error {
			if len(f.addrs) != 1 {
				return usageError{fmt.Errorf("--addr: name the one agent that should leave")}
			}
			if err := c.Leave(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "The agent at %s left the cluster.\n", f.addrs[0])
			return nil
		})
	return cmd
}

func newKeygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new gossip encryption key for --encrypt",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := make([]byte, 32)
			if _, err := rand.Read(key); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(key))
			return nil
		},
	}
}

func newRaftRemovePeerCmd() *cobra.Command {
	cmd, _ := simpleCmd("remove-peer NAME", "Remove a member from the Raft configuration", "",
		cobra.ExactArgs(1), func(cmd *cobra.Command, f *clientFlags, c *client.Client, args []string) error {
			if err := c.RemovePeer(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %s from Raft.\n", args[0])
			return nil
		})
	return cmd
}

func newRaftTransferLeaderCmd() *cobra.Command {
	var to string
	cmd, _ := simpleCmd("transfer-leader", "Hand Raft leadership to another voter", "",
		cobra.NoArgs, func(cmd *cobra.Command, f *clientFlags, c *client.Client, _ []string) error {
			leader, err := c.TransferLeader(cmd.Context(), to)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Leader: %s\n", leader)
			return nil
		})
	cmd.Flags().StringVar(&to, "to", "", "the member to hand leadership to (default: Raft picks)")
	return cmd
}
