package cluster

import (
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dux-io/dux/fsm"
)

// metrics are what the member measures as it happens. Everything else it
// reports (Raft's indexes and state, the store's size, gossip) is read when
// scraped, by nodeCollector.
type metrics struct {
	// applyDuration is the time from raft.Apply to its result on the
	// leader: commit on a quorum and apply to the leader's FSM. Forwarded
	// writes are measured here too, on the leader that applies them.
	applyDuration prometheus.Histogram
	// fsmApply is the time the StateStore (with the dispatcher's hook)
	// takes to apply one batch of committed entries.
	fsmApply prometheus.Histogram
	// leaderChanges counts the times the leader this member knows of
	// became a member: from none (an election, or a follower that lost
	// and regained contact) or from another member.
	leaderChanges prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dux_raft_apply_duration_seconds",
			Help: "Time from proposing a command to Raft on the leader to its result: committed by a quorum and applied. Forwarded writes are measured on the leader.",
			// 0.5 ms to 16 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		fsmApply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dux_fsm_apply_duration_seconds",
			Help: "Time the StateStore takes to apply one batch of committed Raft entries, the dispatcher's hook included.",
			// 5 µs to 0.66 s.
			Buckets: prometheus.ExponentialBuckets(0.000005, 2, 18),
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dux_raft_leader_changes_total",
			Help: "Times the leader this member knows of changed to a member (from none or from another), itself included, since it started.",
		}),
	}
}

// timedFSM is the StateStore as Raft sees it: it times every batch. The
// clock stays out of the fsm package, whose Apply must read none.
type timedFSM struct {
	*fsm.Store
	batch prometheus.Histogram
}

var _ raft.BatchingFSM = timedFSM{}

func (f timedFSM) ApplyBatch(logs []*raft.Log) []interface{} {
	start := time.Now()
	out := f.Store.ApplyBatch(logs)
	f.batch.Observe(time.Since(start).Seconds())
	return out
}

func (f timedFSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// watchLeaders counts the leaders raft reports. It uses an observer, not
// raft's LeaderCh or NotifyCh (monitorLeadership owns NotifyCh), and one
// that never blocks raft: if it cannot keep up an observation is dropped.
func (n *Node) watchLeaders(ch <-chan raft.Observation) {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case o := <-ch:
			if lo, ok := o.Data.(raft.LeaderObservation); ok && lo.LeaderID != "" {
				n.metrics.leaderChanges.Inc()
			}
		}
	}
}

func leaderObserver() (*raft.Observer, chan raft.Observation) {
	ch := make(chan raft.Observation, 64)
	return raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}), ch
}

// Collector returns the member's Prometheus metrics: Raft, the StateStore
// and gossip. Register it on one registry; gauges are read at each scrape.
func (n *Node) Collector() prometheus.Collector { return nodeCollector{n} }

type nodeCollector struct{ n *Node }

var (
	descRaftState = prometheus.NewDesc("dux_raft_state",
		"1 for the Raft state this member is in, 0 for the others.", []string{"state"}, nil)
	descRaftTerm = prometheus.NewDesc("dux_raft_term",
		"Raft term this member is in.", nil, nil)
	descRaftCommit = prometheus.NewDesc("dux_raft_commit_index",
		"Index of the last Raft entry this member knows to be committed.", nil, nil)
	descRaftApplied = prometheus.NewDesc("dux_raft_applied_index",
		"Index of the last Raft entry this member handed to its StateStore.", nil, nil)
	descRaftLast = prometheus.NewDesc("dux_raft_last_log_index",
		"Index of the last entry in this member's Raft log or snapshot.", nil, nil)
	descRaftServers = prometheus.NewDesc("dux_raft_servers",
		"Servers in the latest Raft configuration, this member included, by suffrage.", []string{"suffrage"}, nil)
	descFSMKeys = prometheus.NewDesc("dux_fsm_keys",
		"Keys in the StateStore.", nil, nil)
	descFSMBytes = prometheus.NewDesc("dux_fsm_bytes",
		"Total size of the StateStore's keys and values, in bytes.", nil, nil)
	descFSMRevision = prometheus.NewDesc("dux_fsm_revision",
		"Revision of the StateStore: the index of the last entry it applied.", nil, nil)
	descGossipMembers = prometheus.NewDesc("dux_gossip_members",
		"Members this member knows of through gossip, by status.", []string{"status"}, nil)
)

var (
	raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}
	suffrages  = []raft.ServerSuffrage{raft.Voter, raft.Nonvoter, raft.Staging}
	statuses   = []Status{StatusAlive, StatusSuspect, StatusFailed, StatusLeft}
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftState, descRaftTerm, descRaftCommit, descRaftApplied,
		descRaftLast, descRaftServers, descFSMKeys, descFSMBytes, descFSMRevision, descGossipMembers} {
		ch <- d
	}
	m := c.n.metrics
	m.applyDuration.Describe(ch)
	m.fsmApply.Describe(ch)
	m.leaderChanges.Describe(ch)
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	r := n.raft
	state := r.State()
	for _, s := range raftStates {
		gauge(descRaftState, boolFloat(s == state), strings.ToLower(s.String()))
	}
	gauge(descRaftTerm, float64(r.CurrentTerm()))
	gauge(descRaftCommit, float64(r.CommitIndex()))
	gauge(descRaftApplied, float64(r.AppliedIndex()))
	gauge(descRaftLast, float64(r.LastIndex()))
	if f := r.GetConfiguration(); f.Error() == nil {
		count := make(map[raft.ServerSuffrage]int)
		for _, s := range f.Configuration().Servers {
			count[s.Suffrage]++
		}
		for _, s := range suffrages {
			gauge(descRaftServers, float64(count[s]), strings.ToLower(s.String()))
		}
	}

	st := n.store.Stats()
	gauge(descFSMKeys, float64(st.Keys))
	gauge(descFSMBytes, float64(st.Bytes))
	gauge(descFSMRevision, float64(st.Revision))

	byStatus := n.tracker.counts()
	for _, s := range statuses {
		gauge(descGossipMembers, float64(byStatus[s]), string(s))
	}

	m := n.metrics
	m.applyDuration.Collect(ch)
	m.fsmApply.Collect(ch)
	m.leaderChanges.Collect(ch)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
