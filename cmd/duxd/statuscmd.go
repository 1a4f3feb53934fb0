package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
	"github.com/dux-io/dux/rpc"
)

func init() { clientCommands = append(clientCommands, newStatusCmd) }

func newStatusCmd() *cobra.Command {
	cmd, _ := simpleCmd("status", "Show the cluster on one screen: leader, indexes, members, their health and lag",
		`Ask a member (--addr) to ask every member for its Raft figures and revision,
and show the leader, its term, commit index, applied index and revision,
and every member with its health, gossip status, Raft role and state,
address, version, revision and lag: how far its revision is behind the
leader's commit index. The members answer within a moment of each other,
so under write load the lag is approximate.

Health is healthy (answers, within 256 entries of the leader), lagging
(further behind, or not in Raft yet), suspect (answers, but other members
cannot reach it), unreachable (did not answer), or failed or left as
gossip says.`,
		cobra.NoArgs, func(cmd *cobra.Command, f *clientFlags, c *client.Client, _ []string) error {
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return writeStatus(cmd.OutOrStdout(), f.output, s)
		})
	return cmd
}

// writeStatus prints the cluster's status; the JSON is GET /v1/cluster/status.
func writeStatus(w io.Writer, format string, s *proto.ClusterStatusResponse) error {
	if format == "json" {
		b, err := rpc.StatusJSON(s)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	leader := "none known"
	if s.Leader != "" {
		leader = s.Leader
	}
	healthy := 0
	for _, m := range s.Members {
		if m.Health == "healthy" {
			healthy++
		}
	}
	fmt.Fprintf(w, "Leader:    %s (term %d)\n", leader, s.Term)
	fmt.Fprintf(w, "Indexes:   commit %d, applied %d, revision %d\n", s.CommitIndex, s.AppliedIndex, s.Revision)
	fmt.Fprintf(w, "Members:   %d, %d healthy (as seen by %s)\n\n", len(s.Members), healthy, s.AnsweredBy)
	t := newTable(w, "NAME", "HEALTH", "STATUS", "RAFT", "STATE", "ADDRESS", "VERSION", "REVISION", "LAG")
	var problems []string
	for _, m := range s.Members {
		info := m.Member
		if info == nil {
			info = &proto.MemberInfo{}
		}
		state, rev, lag := "-", "-", "-"
		if m.Reachable {
			state, rev = m.RaftState, u64(m.Revision)
		}
		if m.Lag != nil {
			lag = u64(*m.Lag)
		}
		version := info.Version
		if version == "" {
			version = "-"
		}
		t.row(info.Name, m.Health, info.Status, info.Raft, state, info.Addresses["grpc"], version, rev, lag)
		if m.Error != "" {
			problems = append(problems, fmt.Sprintf("%s did not answer: %s", info.Name, m.Error))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	return nil
}
