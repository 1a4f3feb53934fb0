package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/dux-io/dux/fsm"
)

func init() { clientCommands = append(clientCommands, newSnapshotCmd) }

// defaultSnapshotTimeout is longer than other commands': a snapshot streams
// the whole state.
const defaultSnapshotTimeout = 5 * time.Minute

func newSnapshotCmd() *cobra.Command {
	return groupCmd("snapshot", "Save the cluster's state to a file, or restore it from one",
		newSnapshotSaveCmd(), newSnapshotRestoreCmd())
}

func newSnapshotSaveCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of the whole state to FILE",
		Long: `Save a consistent snapshot of the whole state to FILE.

The snapshot is written to FILE.tmp, synced, checked (it must be complete
and its checksum must match) and only then renamed to FILE, so FILE is
never a partial snapshot.

While it runs, the bytes received and the rate are shown on stderr when it
is a terminal; a summary line follows in any case.`,
		Example: "  duxd snapshot save backup.snap",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			file := args[0]
			var n int64
			var snapErr error
			prog := newProgress(cmd.ErrOrStderr(), "saving", "saved", 0)
			info, err := writeFileAtomic(file, func(w io.Writer) error {
				n, snapErr = c.Snapshot(ctx, prog.writer(w))
				return snapErr
			})
			if snapErr != nil {
				prog.abort()
				return f.fail(snapErr)
			}
			if err != nil {
				prog.abort()
				return err
			}
			prog.finish()
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"file": file, "bytes": n,
					"revision": info.Revision(), "keys": info.Len()})
			}
			t := newTable(cmd.OutOrStdout(), "FILE", "BYTES", "REVISION", "KEYS")
			t.row(file, fmt.Sprint(n), u64(info.Revision()), fmt.Sprint(info.Len()))
			return t.flush()
		},
	}
	f.register(cmd, defaultSnapshotTimeout, true)
	return cmd
}

// writeFileAtomic writes file through write into file.tmp, syncs it, checks
// that it holds a complete snapshot, and renames it into place. On failure
// file is untouched and file.tmp is removed.
func writeFileAtomic(file string, write func(io.Writer) error) (snap *fsm.Snapshot, err error) {
	tmp := file + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			fh.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(fh, 1<<20)
	if err := write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := fh.Sync(); err != nil {
		return nil, fmt.Errorf("sync %s: %w", tmp, err)
	}
	// Read it back: what lands at file must be a whole, uncorrupted snapshot.
	rf, err := os.Open(tmp)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", tmp, err)
	}
	snap, err = fsm.ReadSnapshot(rf)
	rf.Close()
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", tmp, err)
	}
	if err := fh.Close(); err != nil {
		return nil, fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, fmt.Errorf("rename %s: %w", tmp, err)
	}
	// Sync the directory so the rename survives a crash.
	if d, derr := os.Open(filepath.Dir(file)); derr == nil {
		d.Sync()
		d.Close()
	}
	return snap, nil
}

func newSnapshotRestoreCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the whole state of the cluster with the snapshot in FILE",
		Long: `Replace the whole state of the cluster with the snapshot in FILE, as saved
by 'duxd snapshot save'. Every key written since is lost. The revision does
not go backwards: the restored state continues from the cluster's revision.

While it runs, the bytes sent and the rate are shown on stderr when it is a
terminal; a summary line follows in any case.`,
		Example: "  duxd snapshot restore backup.snap",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			file := args[0]
			fh, err := os.Open(file)
			if err != nil {
				return err
			}
			defer fh.Close()
			st, err := fh.Stat()
			if err != nil {
				return err
			}
			if st.IsDir() {
				return usageError{errors.New(file + " is a directory")}
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			prog := newProgress(cmd.ErrOrStderr(), "restoring", "restored", st.Size())
			rev, err := c.Restore(ctx, prog.reader(bufio.NewReaderSize(fh, 1<<20)))
			if err != nil {
				prog.abort()
				return f.fail(err)
			}
			prog.finish()
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"file": file, "bytes": st.Size(), "revision": rev})
			}
			t := newTable(cmd.OutOrStdout(), "FILE", "BYTES", "REVISION")
			t.row(file, fmt.Sprint(st.Size()), u64(rev))
			return t.flush()
		},
	}
	f.register(cmd, defaultSnapshotTimeout, true)
	return cmd
}
