//go:build integration

package integration

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestRobustness_Chaos runs a long randomised fault schedule on 5 members,
// reproducible from its seed: `make chaos SEED=7 DURATION=10m`. It is
// skipped unless DUX_CHAOS_DURATION is set.
func TestRobustness_Chaos(t *testing.T) {
	durStr := os.Getenv("DUX_CHAOS_DURATION")
	if durStr == "" {
		t.Skip("set DUX_CHAOS_DURATION (make chaos) to run the long schedule")
	}
	duration, err := time.ParseDuration(durStr)
	if err != nil {
		t.Fatalf("DUX_CHAOS_DURATION=%q: %v", durStr, err)
	}
	seed, _ := strconv.ParseUint(os.Getenv("DUX_CHAOS_SEED"), 10, 64)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos: seed %d, duration %v", seed, duration)
	r := newRobust(t, 5, seed)
	r.startWorkload(1)
	end := time.Now().Add(duration)
	short := func() time.Duration { return time.Duration(150+r.rng.IntN(850)) * time.Millisecond }
	for time.Now().Before(end) {
		m := r.ms[r.rng.IntN(len(r.ms))]
		switch k := r.rng.IntN(11); {
		case k == 10:
			r.wipe(m)
		case k < 2:
			r.kill(m, short())
		case k < 3:
			r.kill(r.leader(), short())
		case k < 4:
			r.pause(m, short())
		case k < 5:
			r.restart(m)
		case k < 7:
			r.partition(m, short())
		case k < 8:
			r.partition(r.leader(), short())
		default:
			// Two of five cut off at once: the three keep a quorum.
			a, b := r.ms[r.rng.IntN(5)], r.ms[r.rng.IntN(5)]
			if a == b {
				r.partition(a, short())
				break
			}
			r.fault("split-2/3", a.name+","+b.name)
			a.disconnect()
			b.disconnect()
			time.Sleep(short())
			a.connect()
			b.connect()
		}
		// Let the cluster recover before the next fault: every fault keeps
		// a quorum, and faults never pile up past one.
		r.heal()
	}
	r.stopWorkload()
	r.check()
	t.Logf("chaos: seed %d; faults:\n%s", seed, joinLines(r.faultLog))
}

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}
