//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/proto"
)

// A robustness run: containers, a workload of concurrent clients whose
// every operation is recorded with its invocation and completion time,
// subscribers on every member, a schedule of faults, and then the checks:
// the history is linearizable (porcupine), every acknowledged write is on
// every member, every subscriber saw one gap-free, duplicate-free event
// sequence, and no client saw revisions go backwards.

const robustKeys = 8

type robust struct {
	t     *testing.T
	net   *dnet
	ms    []*cmember
	rng   *rand.Rand
	start time.Time
	extra []string // agent flags

	mu      sync.Mutex
	history []porcupine.Operation
	acked   map[string]bool // unique keys whose put was acknowledged
	backErr []string        // revisions that went backwards

	ops, unknown atomic.Int64
	faults       map[string]int
	faultLog     []string
	subs         []*subRecord
	stopWork     chan struct{}
	workers      sync.WaitGroup
}

type subRecord struct {
	name    string
	mu      sync.Mutex
	events  []seen
	head    uint64 // highest revision seen, progress included
	resyncs int
	err     error
}

func newRobust(t *testing.T, members int, seed uint64, extra ...string) *robust {
	requireDocker(t)
	r := &robust{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), acked: map[string]bool{},
		faults: map[string]int{}, stopWork: make(chan struct{}), extra: extra}
	r.net = newNetwork(t)
	r.ms = startContainers(t, r.net, members, append([]string{"--gossip-profile", "local"}, extra...)...)
	waitContainerLeader(t, r.ms)
	r.start = time.Now()
	return r
}

func (r *robust) now() int64 { return time.Since(r.start).Nanoseconds() }

func (r *robust) record(op porcupine.Operation) {
	r.mu.Lock()
	r.history = append(r.history, op)
	r.mu.Unlock()
	r.ops.Add(1)
}

// indeterminate says whether an error leaves a write's outcome unknown.
// Some errors say for certain that the write was never proposed: the
// client could not connect at all, or the member found no leader to
// forward to, or was told it is not the leader before appending.
func indeterminate(err error) bool {
	msg := status.Convert(err).Message()
	for _, never := range []string{"connection error: desc", "cluster: no leader", "cluster: not leader"} {
		if strings.HasPrefix(msg, never) {
			return false
		}
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Unknown, codes.Internal:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// startWorkload runs clients per member until stopWorkload.
func (r *robust) startWorkload(perMember int) {
	for i, m := range r.ms {
		for j := range perMember {
			id := i*perMember + j
			r.workers.Add(1)
			go r.worker(id, m, rand.New(rand.NewPCG(r.rng.Uint64(), uint64(id))))
		}
	}
	// One subscriber per member, each able to fail over to the others.
	var eps []string
	for _, m := range r.ms {
		eps = append(eps, m.grpcAddr())
	}
	for i := range r.ms {
		c, err := client.New(client.Config{Endpoints: append([]string{eps[i]}, eps...)})
		if err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(func() { c.Close() })
		rec := &subRecord{name: fmt.Sprintf("sub%d", i)}
		r.subs = append(r.subs, rec)
		go r.subscribe(c, rec)
	}
}

func (r *robust) subscribe(c *client.Client, rec *subRecord) {
	ctx, cancel := context.WithCancel(context.Background())
	r.t.Cleanup(cancel)
	sub := c.Subscribe(ctx, []string{"/lin/", "/acked/"}, client.FromRevision(1), client.WithProgress(200*time.Millisecond))
	for {
		ev, err := sub.Recv()
		if err != nil {
			rec.mu.Lock()
			if ctx.Err() == nil {
				rec.err = err
			}
			rec.mu.Unlock()
			return
		}
		rec.mu.Lock()
		switch ev.Type {
		case proto.Event_PROGRESS, proto.Event_SYNCED:
		case proto.Event_RESYNC:
			rec.resyncs++
		case proto.Event_STATE:
		default:
			rec.events = append(rec.events, seen{Rev: ev.Revision, Index: ev.Index, Type: ev.Type, Key: ev.Kv.GetKey(), Value: string(ev.Kv.GetValue())})
		}
		rec.head = max(rec.head, ev.Revision)
		rec.mu.Unlock()
	}
}

func (r *robust) worker(id int, m *cmember, rng *rand.Rand) {
	defer r.workers.Done()
	st := m.state()
	lastRead := map[string]string{}
	var lastRev uint64
	seq := 0
	observe := func(rev uint64, what string) {
		if rev < lastRev {
			r.mu.Lock()
			r.backErr = append(r.backErr, fmt.Sprintf("client %d on %s: %s at revision %d after %d", id, m.name, what, rev, lastRev))
			r.mu.Unlock()
		}
		lastRev = max(lastRev, rev)
	}
	pause := func(err error) {
		// After an error, wait a little: a member that is down answers at
		// once, and a hot loop would only fill the history.
		if err != nil {
			time.Sleep(time.Duration(200+rng.IntN(300)) * time.Millisecond)
		}
	}
	for {
		select {
		case <-r.stopWork:
			return
		default:
		}
		seq++
		key := fmt.Sprintf("/lin/k%d", rng.IntN(robustKeys))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		call := r.now()
		switch p := rng.IntN(10); {
		case p < 4: // linearizable get
			resp, err := st.Get(ctx, &proto.GetRequest{Key: key})
			var out kvOutput
			switch {
			case err == nil:
				out.Value = string(resp.Kv.Value)
				observe(resp.Revision, "get")
			case status.Code(err) == codes.NotFound:
			default:
				cancel()
				pause(err)
				continue // a failed read has no effect: leave it out
			}
			lastRead[key] = out.Value
			r.record(porcupine.Operation{ClientId: id, Input: kvInput{Op: 'g', Key: key}, Call: call, Output: out, Return: r.now()})
		case p < 7: // put
			val := fmt.Sprintf(`"c%d-%d"`, id, seq)
			resp, err := st.Put(ctx, &proto.PutRequest{Key: key, Value: []byte(val)})
			op := porcupine.Operation{ClientId: id, Input: kvInput{Op: 'p', Key: key, Value: val}, Call: call, Return: r.now()}
			switch {
			case err == nil:
				observe(resp.Revision, "put")
			case indeterminate(err):
				op.Output, op.Return = kvOutput{Unknown: true}, math.MaxInt64
				r.unknown.Add(1)
			default:
				cancel()
				pause(err)
				continue // refused: it did not happen
			}
			if op.Output == nil {
				op.Output = kvOutput{}
			}
			r.record(op)
			pause(err)
		case p < 9: // compare-and-set on the value last read
			expect, val := lastRead[key], fmt.Sprintf(`"c%d-%d"`, id, seq)
			cmp := &proto.Compare{Key: key, Target: proto.Compare_VALUE, Op: proto.Compare_EQUAL, Value: []byte(expect)}
			if expect == "" {
				cmp = &proto.Compare{Key: key, Target: proto.Compare_VERSION, Op: proto.Compare_EQUAL, Number: 0}
			}
			resp, err := st.Txn(ctx, &proto.TxnRequest{Compares: []*proto.Compare{cmp},
				Success: []*proto.Op{{Type: proto.Op_PUT, Key: key, Value: []byte(val)}}})
			op := porcupine.Operation{ClientId: id, Input: kvInput{Op: 'c', Key: key, Value: val, Expect: expect}, Call: call, Return: r.now()}
			switch {
			case err == nil:
				op.Output = kvOutput{OK: resp.Succeeded}
				observe(resp.Revision, "txn")
			case indeterminate(err):
				op.Output, op.Return = kvOutput{Unknown: true}, math.MaxInt64
				r.unknown.Add(1)
			default:
				cancel()
				pause(err)
				continue
			}
			r.record(op)
			pause(err)
		default: // a write that must never be lost
			key := fmt.Sprintf("/acked/c%d/%06d", id, seq)
			_, err := st.Put(ctx, &proto.PutRequest{Key: key, Value: []byte(`1`)})
			if err == nil {
				r.mu.Lock()
				r.acked[key] = true
				r.mu.Unlock()
			}
			pause(err)
		}
		cancel()
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	}
}

func (r *robust) stopWorkload() {
	close(r.stopWork)
	r.workers.Wait()
}

// leader returns the member that the reachable members name as leader.
func (r *robust) leader() *cmember {
	for range 100 {
		for _, m := range r.ms {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := m.cluster().Leader(ctx, &proto.LeaderRequest{})
			cancel()
			if err == nil && resp.Id != "" {
				for _, c := range r.ms {
					if c.name == resp.Id {
						return c
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatal("no leader")
	return nil
}

func (r *robust) fault(kind, what string) {
	r.faults[kind]++
	r.faultLog = append(r.faultLog, fmt.Sprintf("%6.1fs %-10s %s", time.Since(r.start).Seconds(), kind, what))
}

func (r *robust) dockerDo(args ...string) {
	if _, err := docker(ctxT(r.t, time.Minute), args...); err != nil {
		r.t.Fatal(err)
	}
}

// Faults. Each returns with the fault healed.
func (r *robust) partition(m *cmember, d time.Duration) {
	r.fault("partition", m.name)
	m.disconnect()
	time.Sleep(d)
	m.connect()
}

func (r *robust) kill(m *cmember, d time.Duration) {
	r.fault("kill", m.name)
	r.dockerDo("kill", "-s", "KILL", m.container())
	time.Sleep(d)
	r.dockerDo("start", m.container())
}

func (r *robust) restart(m *cmember) {
	r.fault("restart", m.name)
	r.dockerDo("restart", "-t", "10", m.container())
}

func (r *robust) pause(m *cmember, d time.Duration) {
	r.fault("pause", m.name)
	r.dockerDo("pause", m.container())
	time.Sleep(d)
	r.dockerDo("unpause", m.container())
}

// heal waits until every member serves linearizable reads again.
func (r *robust) heal() { waitContainerLeader(r.t, r.ms) }

// check runs every check and prints the summary table.
func (r *robust) check() {
	t := r.t
	r.heal()
	ctx := ctxT(t, 5*time.Minute)
	// The final revision, then every subscriber must reach it.
	final, err := r.ms[0].state().Put(ctx, &proto.PutRequest{Key: "/lin/end", Value: []byte(`0`)})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	history := append([]porcupine.Operation{}, r.history...)
	acked := len(r.acked)
	r.mu.Unlock()

	res, info := porcupine.CheckOperationsVerbose(kvModel, history, 3*time.Minute)
	linearizable := res == porcupine.Ok

	lost := 0
	for _, m := range r.ms {
		eventually(t, 60*time.Second, func() error {
			got, rev, err := listAllC(ctx, m, "/acked/")
			if err != nil {
				return err
			}
			if rev < final.Revision {
				return fmt.Errorf("%s at revision %d, want %d", m.name, rev, final.Revision)
			}
			lost = 0
			r.mu.Lock()
			for k := range r.acked {
				if !got[k] {
					lost++
				}
			}
			r.mu.Unlock()
			return nil
		})
		if lost > 0 {
			break
		}
	}
	var subProblems []string
	var ref []seen
	for _, s := range r.subs {
		eventually(t, 60*time.Second, func() error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.err != nil {
				return nil
			}
			if s.head < final.Revision {
				return fmt.Errorf("%s at revision %d, want %d", s.name, s.head, final.Revision)
			}
			return nil
		})
		s.mu.Lock()
		evs := append([]seen{}, s.events...)
		switch {
		case s.err != nil:
			subProblems = append(subProblems, fmt.Sprintf("%s ended: %v", s.name, s.err))
		case s.resyncs > 0:
			subProblems = append(subProblems, fmt.Sprintf("%s had to resync %d times", s.name, s.resyncs))
		}
		s.mu.Unlock()
		if err := checkOrdered(evs); err != nil {
			subProblems = append(subProblems, fmt.Sprintf("%s: %v", s.name, err))
		}
		if ref == nil {
			ref = evs
		} else if len(evs) != len(ref) {
			subProblems = append(subProblems, fmt.Sprintf("%s saw %d events, %s %d", s.name, len(evs), r.subs[0].name, len(ref)))
		} else {
			for i := range evs {
				if evs[i] != ref[i] {
					subProblems = append(subProblems, fmt.Sprintf("%s event %d is %+v, %s's %+v", s.name, i, evs[i], r.subs[0].name, ref[i]))
					break
				}
			}
		}
	}
	total := 0
	var kinds []string
	for k, n := range r.faults {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	summary := fmt.Sprintf(`
| measure | value |
|---|---|
| members | %d |
| faults injected | %d (%s) |
| operations | %d |
| acknowledged unique writes | %d |
| indeterminate | %d |
| lost | %d |
| linearizable | %v |
| subscribers consistent | %v (%d events each) |
| revisions never went back | %v |
`, len(r.ms), total, strings.Join(kinds, ", "), r.ops.Load(), acked, r.unknown.Load(), lost,
		yesNo(linearizable), yesNo(len(subProblems) == 0), len(ref), yesNo(len(r.backErr) == 0))
	t.Log(summary)
	fmt.Println(summary)
	if !linearizable {
		path := r.writeArtifacts(history, info)
		t.Errorf("history is not linearizable (%v); history and visualisation in %s", res, path)
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes lost", lost)
	}
	for _, p := range subProblems {
		t.Error(p)
	}
	for _, b := range r.backErr {
		t.Error(b)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeArtifacts saves the history as JSON and porcupine's visualisation
// as HTML under integration/artifacts, and returns the HTML's path.
func (r *robust) writeArtifacts(history []porcupine.Operation, info porcupine.LinearizationInfo) string {
	dir, _ := filepath.Abs("artifacts")
	os.MkdirAll(dir, 0o755)
	base := filepath.Join(dir, fmt.Sprintf("%s-%d", strings.ReplaceAll(r.t.Name(), "/", "_"), time.Now().Unix()))
	if b, err := json.MarshalIndent(history, "", " "); err == nil {
		os.WriteFile(base+".history.json", b, 0o644)
	}
	os.WriteFile(base+".faults.txt", []byte(strings.Join(r.faultLog, "\n")+"\n"), 0o644)
	if err := porcupine.VisualizePath(kvModel, info, base+".html"); err != nil {
		r.t.Logf("visualise: %v", err)
	}
	return base + ".html"
}

// listAllC lists a prefix on a container member (stale) into a set.
func listAllC(ctx context.Context, m *cmember, prefix string) (map[string]bool, uint64, error) {
	out := map[string]bool{}
	var after string
	var rev uint64
	for {
		resp, err := m.state().List(ctx, &proto.ListRequest{Prefix: prefix, After: after, Limit: 5000, KeysOnly: true, Consistency: proto.Consistency_STALE})
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Revision
		}
		for _, kv := range resp.Items {
			out[kv.Key] = true
		}
		if resp.Next == "" {
			return out, rev, nil
		}
		after = resp.Next
	}
}

// Rule: under a partition, a leader kill and a restart, the history of a
// 3-member cluster is linearizable, no acknowledged write is lost, all
// subscribers see one sequence, and revisions never go backwards.
func TestRobustness_ShortSchedule(t *testing.T) {
	r := newRobust(t, 3, 1)
	r.startWorkload(2)
	time.Sleep(3 * time.Second)
	r.partition(r.anyFollower(), 6*time.Second)
	r.heal()
	time.Sleep(2 * time.Second)
	r.kill(r.leader(), 5*time.Second)
	r.heal()
	time.Sleep(2 * time.Second)
	r.restart(r.ms[r.rng.IntN(len(r.ms))])
	r.heal()
	time.Sleep(2 * time.Second)
	r.stopWorkload()
	r.check()
}

func (r *robust) anyFollower() *cmember {
	l := r.leader()
	for _, m := range r.ms {
		if m != l {
			return m
		}
	}
	return nil
}

// wipe loses a member's data: it is removed from Raft, its container and
// data are deleted, and a fresh one with the same name and address joins
// again (the autopilot adds it back and promotes it once caught up).
func (r *robust) wipe(m *cmember) {
	r.fault("wipe", m.name)
	var other *cmember
	for _, o := range r.ms {
		if o != m {
			other = o
			break
		}
	}
	if m == r.leader() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m.cluster().TransferLeader(ctx, &proto.TransferLeaderRequest{To: other.name})
		cancel()
	}
	r.dockerDo("rm", "-f", "-v", m.container())
	eventually(r.t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := other.cluster().RemovePeer(ctx, &proto.RemovePeerRequest{Id: m.name})
		if status.Code(err) == codes.NotFound {
			return nil
		}
		return err
	})
	m.args = append([]string{}, r.extra...)
	m.args = append(m.args, "--gossip-profile", "local")
	for _, o := range r.ms {
		if o != m {
			m.args = append(m.args, "--join", o.gossipAddr())
		}
	}
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
	m.run()
}

// Rule: the checker can fail. With reads served from local state
// (--unsafe-stale-reads, a test-only switch), a member cut off from the
// others answers reads with old values, and the history must be found not
// linearizable, with the history and its visualisation saved.
func TestRobustness_CheckerCatchesStaleReads(t *testing.T) {
	r := newRobust(t, 3, 2, "--unsafe-stale-reads")
	r.startWorkload(2)
	time.Sleep(2 * time.Second)
	r.partition(r.anyFollower(), 8*time.Second)
	time.Sleep(time.Second)
	r.stopWorkload()
	r.mu.Lock()
	history := append([]porcupine.Operation{}, r.history...)
	r.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, 2*time.Minute)
	if res != porcupine.Illegal {
		t.Fatalf("stale reads went unnoticed: the checker said %v for %d operations", res, len(history))
	}
	path := r.writeArtifacts(history, info)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no visualisation written: %v", err)
	}
	t.Logf("stale reads caught: %d operations not linearizable; see %s", len(history), path)
}
