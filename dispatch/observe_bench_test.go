package dispatch

import (
	"fmt"
	"testing"
)

// BenchmarkWriteLog_Note is what Applied adds per event to record its
// writer: the same writer and prefix as the event before (a transaction,
// a sensor's burst), or one of 1,024 known pairs taken in turn.
func BenchmarkWriteLog_Note(b *testing.B) {
	keys := make([]string, 1024)
	origins := make([]string, 1024)
	statuses := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("/bench/p%02d/k%04d", i%64, i)
		origins[i] = fmt.Sprintf("writer-%02d", i%16)
		statuses[i] = fmt.Sprintf("/status/allocations/a%04d", i)
	}
	b.Run("same", func(b *testing.B) {
		w := newWriteLog(2048)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			w.note("sensor/executor", statuses[i%len(statuses)], 100, 0)
		}
	})
	b.Run("known", func(b *testing.B) {
		w := newWriteLog(2048)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			w.note(origins[i%len(keys)], keys[i%len(keys)], 100, 0)
		}
	})
}
