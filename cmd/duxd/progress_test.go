package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// Rule: when stderr is not a terminal, only the summary is printed.
func TestProgress_NotATerminalPrintsOnlyTheSummary(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := newProgressAt(&out, false, "saving", "saved", 0, clock.now)
	w := p.writer(io.Discard)
	chunk := make([]byte, 256<<10)
	for range 12 { // 3 MiB over 2 s
		clock.advance(2 * time.Second / 12)
		w.Write(chunk)
	}
	p.finish()
	if got, want := out.String(), "saved 3.0 MiB in 2.0s (1.5 MiB/s)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Rule: on a terminal the line is redrawn in place, at most four times a
// second however often bytes arrive, and cleared before the summary.
func TestProgress_LiveLineAtMostFourTimesASecond(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := newProgressAt(&out, true, "restoring", "restored", 10<<20, clock.now)
	r := p.reader(bytes.NewReader(make([]byte, 10<<20)))
	buf := make([]byte, 64<<10)
	for { // 160 reads over 2 s: one every 12.5 ms
		clock.advance(12500 * time.Microsecond)
		if _, err := r.Read(buf); err == io.EOF {
			break
		}
	}
	p.finish()
	s := out.String()
	if draws := strings.Count(s, "restoring "); draws != 8 {
		t.Errorf("%d redraws in 2 s, want 8 (every 250 ms):\n%q", draws, s)
	}
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("want the live line redrawn in place and one newline, after the summary: %q", s)
	}
	// At 250 ms: 20 reads of 64 KiB.
	if first := s[:strings.Index(s[1:], "\r")+1]; first != "\rrestoring 1.2 MiB of 10.0 MiB (12%), 5.0 MiB/s" {
		t.Errorf("first line: got %q", first)
	}
	last := s[strings.LastIndex(s, "\r")+1:]
	if last != "restored 10.0 MiB in 2.0s (5.0 MiB/s)\n" {
		t.Errorf("summary: got %q", last)
	}
	// The line before the summary is wiped with spaces, not left behind.
	if !strings.Contains(s, "\r"+strings.Repeat(" ", len("restoring 9.9 MiB of 10.0 MiB (99%), 5.0 MiB/s"))) {
		t.Errorf("the live line is not cleared before the summary: %q", s)
	}
}

// Rule: a failed operation clears the live line, so the error that follows
// starts on a clean line; nothing else is printed.
func TestProgress_AbortClearsTheLine(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(1000, 0)}
	p := newProgressAt(&out, true, "saving", "saved", 0, clock.now)
	clock.advance(time.Second)
	p.add(1 << 20)
	p.abort()
	s := out.String()
	if !strings.HasPrefix(s, "\rsaving 1.0 MiB, 1.0 MiB/s") || !strings.HasSuffix(s, "\r") || strings.Contains(s, "saved") {
		t.Errorf("got %q, want the live line, then spaces over it and a carriage return", s)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[float64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.00 GiB",
	} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%v) = %q, want %q", n, got, want)
		}
	}
}

func TestIsTerminal_FilesAndBuffers(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if isTerminal(null) {
		t.Error("/dev/null is not a terminal")
	}
}
