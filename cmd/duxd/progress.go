package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressInterval is how often a live progress line is redrawn, at most.
const progressInterval = 250 * time.Millisecond

// progress reports the bytes a long operation moves, on stderr: while it
// runs, a line redrawn at most every progressInterval, only when stderr is
// a terminal; at the end, one summary line ("saved 12.0 MiB in 1.5s
// (8.0 MiB/s)") whatever stderr is. The counting reader and writer call it
// from the goroutine that moves the bytes; it is not safe for concurrent use.
type progress struct {
	w     io.Writer
	live  bool
	doing string // "saving": the live line
	done  string // "saved": the summary
	total int64  // bytes expected; 0 when unknown
	now   func() time.Time

	start, drawn time.Time
	n            int64
	width        int // of the live line on screen, to clear it
}

func newProgress(w io.Writer, doing, done string, total int64) *progress {
	return newProgressAt(w, isTerminal(w), doing, done, total, time.Now)
}

func newProgressAt(w io.Writer, live bool, doing, done string, total int64, now func() time.Time) *progress {
	t := now()
	return &progress{w: w, live: live, doing: doing, done: done, total: total, now: now, start: t, drawn: t}
}

// isTerminal reports whether w is a terminal: a character device other
// than /dev/null, and not TERM=dumb.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

func (p *progress) add(k int) {
	p.n += int64(k)
	if !p.live {
		return
	}
	if now := p.now(); now.Sub(p.drawn) >= progressInterval {
		p.drawn = now
		p.draw(p.line(now))
	}
}

func (p *progress) line(now time.Time) string {
	rate := humanBytes(p.rate(now)) + "/s"
	if p.total > 0 {
		return fmt.Sprintf("%s %s of %s (%d%%), %s", p.doing, humanBytes(float64(p.n)), humanBytes(float64(p.total)),
			min(100, p.n*100/p.total), rate)
	}
	return fmt.Sprintf("%s %s, %s", p.doing, humanBytes(float64(p.n)), rate)
}

// draw replaces the live line with s.
func (p *progress) draw(s string) {
	pad := max(0, p.width-len(s))
	fmt.Fprintf(p.w, "\r%s%s", s, strings.Repeat(" ", pad))
	if pad > 0 {
		fmt.Fprintf(p.w, "\r%s", s) // leave the cursor after the text
	}
	p.width = len(s)
}

func (p *progress) rate(now time.Time) float64 {
	elapsed := max(now.Sub(p.start), time.Millisecond)
	return float64(p.n) / elapsed.Seconds()
}

// finish clears the live line and prints the summary.
func (p *progress) finish() {
	now := p.now()
	p.clear()
	fmt.Fprintf(p.w, "%s %s in %.1fs (%s/s)\n", p.done, humanBytes(float64(p.n)), now.Sub(p.start).Seconds(),
		humanBytes(p.rate(now)))
}

// abort clears the live line, so that an error prints on a clean line.
func (p *progress) abort() { p.clear() }

func (p *progress) clear() {
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// writer counts what is written through it to w.
func (p *progress) writer(w io.Writer) io.Writer { return progressWriter{w, p} }

// reader counts what is read through it from r.
func (p *progress) reader(r io.Reader) io.Reader { return progressReader{r, p} }

type progressWriter struct {
	w io.Writer
	p *progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(n)
	return n, err
}

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}

// humanBytes writes a size in B, KiB, MiB or GiB.
func humanBytes(n float64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%.0f B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", n/(1<<30))
}
