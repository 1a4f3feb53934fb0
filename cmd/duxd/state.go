package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

func init() { clientCommands = append(clientCommands, newStateCmd) }

// defaultClientTimeout bounds a client command that makes a few requests.
const defaultClientTimeout = 10 * time.Second

func newStateCmd() *cobra.Command {
	cmd := groupCmd("state", "Read and write keys of the StateStore",
		newStateGetCmd(), newStatePutCmd(), newStateDelCmd(), newStateLsCmd())
	cmd.Long = `Read and write keys of the StateStore on a running cluster.

Keys are slash paths (/config/app/db); values are JSON documents. Reads are
linearizable unless --stale is given. The members are named by --addr (or
DUX_ADDR), a comma-separated list of gRPC addresses.`
	return cmd
}

func newStateGetCmd() *cobra.Command {
	var f clientFlags
	var stale bool
	cmd := &cobra.Command{
		Use:     "get KEY",
		Short:   "Print a key",
		Example: "  duxd state get /config/app/db\n  duxd state get /config/app/db -o json --stale",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			var opts []client.ReadOption
			if stale {
				opts = append(opts, client.Stale())
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			kv, _, err := c.Get(ctx, args[0], opts...)
			if err != nil {
				return f.fail(err)
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), toKVJSON(kv))
			}
			return writeKVTable(cmd.OutOrStdout(), []*proto.KeyValue{kv})
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	cmd.Flags().BoolVar(&stale, "stale", false, "read the answering member's state, which may lag (works without a leader)")
	return cmd
}

// readValue reads the JSON value argument: a document, or "-" for stdin.
// The server checks the value too; this only gives a friendlier message.
func readValue(arg string, stdin io.Reader) ([]byte, error) {
	v := []byte(arg)
	if arg == "-" {
		var err error
		if v, err = io.ReadAll(stdin); err != nil {
			return nil, fmt.Errorf("read value from stdin: %w", err)
		}
	}
	var doc any
	if err := json.Unmarshal(v, &doc); err != nil {
		var se *json.SyntaxError
		where := ""
		if errors.As(err, &se) {
			where = fmt.Sprintf(" at byte %d", se.Offset)
		}
		return nil, usageError{fmt.Errorf("the value is not JSON: %v%s\n"+
			`A string value needs JSON quotes, e.g. '"hello"'; use - to read the value from stdin.`, err, where)}
	}
	return v, nil
}

func newStatePutCmd() *cobra.Command {
	var f clientFlags
	var lease, cas uint64
	var origin string
	cmd := &cobra.Command{
		Use:   "put KEY JSON",
		Short: "Write a key",
		Long: `Write a key. The value is a JSON document, or - to read it from stdin.

--cas REV writes only if the key's mod revision is still REV (0: only if the
key does not exist); otherwise nothing changes and the command fails with
the key's current revision.`,
		Example: `  duxd state put /config/app/db '{"host":"db-1","port":5432}'
  duxd state put /config/app/db - < db.json
  duxd state put /locks/deploy '"me"' --cas 0 --lease 7`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			value, err := readValue(args[1], cmd.InOrStdin())
			if err != nil {
				return err
			}
			opts := []client.PutOption{client.WithOrigin(origin)}
			if lease != 0 {
				opts = append(opts, client.WithLease(lease))
			}
			if cmd.Flags().Changed("cas") {
				opts = append(opts, client.WithCAS(cas))
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			rev, err := c.Put(ctx, args[0], value, opts...)
			if err != nil {
				return f.fail(err)
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"key": args[0], "revision": rev})
			}
			t := newTable(cmd.OutOrStdout(), "KEY", "REVISION")
			t.row(args[0], u64(rev))
			return t.flush()
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	fl := cmd.Flags()
	fl.Uint64Var(&lease, "lease", 0, "attach the key to this lease")
	fl.Uint64Var(&cas, "cas", 0, "write only if the key's mod revision is REV (0: only if it does not exist)")
	fl.StringVar(&origin, "origin", "cli", "name of the writer, stored with the key")
	return cmd
}

func newStateDelCmd() *cobra.Command {
	var f clientFlags
	var prefix bool
	var cas uint64
	var origin string
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete a key, or every key under a prefix",
		Long: `Delete a key, or with --prefix every key under KEY (which should end in /).
Deleting a key that does not exist is not an error: it deletes 0 keys.`,
		Example: "  duxd state del /config/app/db\n  duxd state del /config/app/ --prefix",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			opts := []client.DeleteOption{client.WithOrigin(origin)}
			if prefix {
				opts = append(opts, client.WithPrefix())
			}
			if cmd.Flags().Changed("cas") {
				if prefix {
					return usageError{errors.New("--cas and --prefix cannot be used together")}
				}
				opts = append(opts, client.WithCAS(cas))
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			rev, deleted, err := c.Delete(ctx, args[0], opts...)
			if err != nil {
				return f.fail(err)
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"key": args[0], "revision": rev, "deleted": deleted})
			}
			t := newTable(cmd.OutOrStdout(), "KEY", "DELETED", "REVISION")
			t.row(args[0], u64(deleted), u64(rev))
			return t.flush()
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	fl := cmd.Flags()
	fl.BoolVar(&prefix, "prefix", false, "delete every key under KEY")
	fl.Uint64Var(&cas, "cas", 0, "delete only if the key's mod revision is REV")
	fl.StringVar(&origin, "origin", "cli", "name of the writer")
	return cmd
}

func newStateLsCmd() *cobra.Command {
	var f clientFlags
	var limit uint32
	var after string
	var keysOnly, stale bool
	cmd := &cobra.Command{
		Use:     "ls [PREFIX]",
		Aliases: []string{"list"},
		Short:   "List the keys under a prefix",
		Long: `List the keys that start with PREFIX (default /), in key order.

Without --limit every key is listed, in as many pages as it takes (the pages
are separate reads). With --limit N one page is listed; continue with
--after set to the "next" key it reports.`,
		Example: "  duxd state ls /config/\n  duxd state ls / --keys-only --limit 100 -o json",
		Args:    usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			prefix := "/"
			if len(args) == 1 {
				prefix = args[0]
			}
			var opts []client.ListOption
			if stale {
				opts = append(opts, client.Stale())
			}
			if keysOnly {
				opts = append(opts, client.WithKeysOnly())
			}
			if after != "" {
				opts = append(opts, client.WithAfter(after))
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			var resp *proto.ListResponse
			if limit > 0 {
				resp, err = c.List(ctx, prefix, append(opts, client.WithLimit(limit))...)
			} else {
				resp = &proto.ListResponse{}
				resp.Items, resp.Revision, err = c.ListAll(ctx, prefix, opts...)
			}
			if err != nil {
				return f.fail(err)
			}
			return writeList(cmd.OutOrStdout(), cmd.ErrOrStderr(), f.output, resp)
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	fl := cmd.Flags()
	fl.Uint32Var(&limit, "limit", 0, "list at most N keys (one page); 0 lists every key")
	fl.StringVar(&after, "after", "", "list only keys after this one (continues a listing)")
	fl.BoolVar(&keysOnly, "keys-only", false, "leave the values out")
	fl.BoolVar(&stale, "stale", false, "read the answering member's state, which may lag (works without a leader)")
	return cmd
}

// writeList prints a listing; in a table, a note on stderr says where the
// next page starts.
func writeList(out, errOut io.Writer, format string, resp *proto.ListResponse) error {
	if format == "json" {
		return writeJSON(out, struct {
			Revision uint64   `json:"revision"`
			Items    []kvJSON `json:"items"`
			Next     string   `json:"next,omitempty"`
		}{resp.Revision, toKVsJSON(resp.Items), resp.Next})
	}
	if err := writeKVTable(out, resp.Items); err != nil {
		return err
	}
	if resp.Next != "" {
		fmt.Fprintf(errOut, "More keys follow: continue with --after %s\n", resp.Next)
	}
	return nil
}
