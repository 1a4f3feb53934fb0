package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/dux-io/dux/fsm"
)

func TestCLI_SnapshotSaveRestore(t *testing.T) {
	f, addr := startFakeMember(t)
	file := filepath.Join(t.TempDir(), "backup.snap")

	out, _, err := cliRun(t, "", "snapshot", "save", file, "--addr", addr)
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsm.ReadSnapshot(bytes.NewReader(data)); err != nil {
		t.Fatalf("saved file is not a snapshot: %v", err)
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", file, err)
	}
	if !strings.HasPrefix(out, "FILE") || !strings.Contains(out, file) {
		t.Errorf("save output: got %q", out)
	}

	out, _, err = cliRun(t, "", "snapshot", "restore", file, "--addr", addr, "-o", "json")
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !bytes.Equal(f.restored, data) {
		t.Errorf("restore: the server got %d bytes, want the file's %d", len(f.restored), len(data))
	}
	if !strings.Contains(out, `"revision": 1001`) {
		t.Errorf("restore output: got %s", out)
	}
}

func TestCLI_SnapshotRestoreErrors(t *testing.T) {
	_, addr := startFakeMember(t)
	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, []byte("garbage"), 0o600)
	_, _, err := cliRun(t, "", "snapshot", "restore", bad, "--addr", addr)
	if err == nil || !strings.HasPrefix(err.Error(), "invalid argument: fsm: bad snapshot") || exitCode(err) != 1 {
		t.Errorf("bad snapshot: got %v (exit %d), want the server's invalid argument, exit 1", err, exitCode(err))
	}
	_, _, err = cliRun(t, "", "snapshot", "restore", filepath.Join(t.TempDir(), "missing"), "--addr", addr)
	if !errors.Is(err, os.ErrNotExist) || exitCode(err) != 1 {
		t.Errorf("missing file: got %v, want not-exist, exit 1", err)
	}
}

// FILE is only ever a whole, checked snapshot: a failed or corrupt download
// leaves an existing FILE alone and no FILE.tmp behind.
func TestWriteFileAtomic_LeavesNoPartialFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "s.snap")
	os.WriteFile(file, []byte("old"), 0o600)

	cases := map[string]func(io.Writer) error{
		"write fails": func(w io.Writer) error {
			w.Write([]byte("DUXSNAP"))
			return errors.New("stream cut")
		},
		"truncated": func(w io.Writer) error {
			var buf bytes.Buffer
			fsm.New().WriteSnapshot(&buf)
			_, err := w.Write(buf.Bytes()[:buf.Len()-2])
			return err
		},
	}
	for name, write := range cases {
		if _, err := writeFileAtomic(file, write); err == nil {
			t.Errorf("%s: got nil error", name)
		}
		if got, _ := os.ReadFile(file); string(got) != "old" {
			t.Errorf("%s: FILE changed to %q", name, got)
		}
		if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
			t.Errorf("%s: FILE.tmp left behind", name)
		}
	}
}

// Rule: save and restore end with a summary on stderr (stderr is not a
// terminal here, so there is no live line); stdout keeps the result alone.
func TestCLI_SnapshotProgressSummary(t *testing.T) {
	_, addr := startFakeMember(t)
	file := filepath.Join(t.TempDir(), "backup.snap")
	summary := regexp.MustCompile(`^(saved|restored) \d+ B in \d+\.\ds \(\S+ (B|KiB|MiB|GiB)/s\)\n$`)

	out, stderr, err := cliRun(t, "", "snapshot", "save", file, "--addr", addr, "-o", "json")
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	if !summary.MatchString(stderr) || !strings.HasPrefix(stderr, "saved ") {
		t.Errorf("save stderr: got %q, want a summary line", stderr)
	}
	if strings.Contains(out, "saved") {
		t.Errorf("save stdout: got %q, want the JSON result only", out)
	}
	size, _ := os.Stat(file)
	if want := "saved " + strconv.FormatInt(size.Size(), 10) + " B in "; !strings.HasPrefix(stderr, want) {
		t.Errorf("save stderr: got %q, want it to start %q", stderr, want)
	}

	_, stderr, err = cliRun(t, "", "snapshot", "restore", file, "--addr", addr)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !summary.MatchString(stderr) || !strings.HasPrefix(stderr, "restored ") {
		t.Errorf("restore stderr: got %q, want a summary line", stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, []byte("garbage"), 0o600)
	if _, stderr, err = cliRun(t, "", "snapshot", "restore", bad, "--addr", addr); err == nil || stderr != "" {
		t.Errorf("failed restore: error %v, stderr %q; want an error and no summary", err, stderr)
	}
}
