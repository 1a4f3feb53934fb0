package scheduler

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// Where the scheduler's state lives in the StateStore.
const (
	// ComponentsPrefix holds the desired components: /components/<name>.
	ComponentsPrefix = "/components/"
	// AllocationsPrefix holds the placements the leader decided:
	// /allocations/<component>/<id>.
	AllocationsPrefix = "/allocations/"
	// AllocStatusPrefix holds what each host's executor observes of its
	// allocations: /status/allocations/<id>.
	AllocStatusPrefix = "/status/allocations/"
	// ComponentStatusPrefix holds the leader's summary of each component:
	// /status/components/<name>.
	ComponentStatusPrefix = "/status/components/"
	// GuardKey fences the scheduler's writes: it holds the term of the
	// leader whose plans may land (see Leader).
	GuardKey = "/scheduler/leader"
)

// Origins of the scheduler's writes, as they appear in events.
const (
	LeaderOrigin   = "scheduler"
	ExecutorOrigin = "sensor/executor"
)

// Allocation states reported by an executor.
const (
	StatePending = "pending"
	StateRunning = "running"
	StateExited  = "exited"
	StateFailed  = "failed"
)

// ReasonRestarting is the reason of a pending allocation whose container
// the engine is restarting under its restart policy, or restarted less
// than ExecutorConfig.MinUptime ago: it may be crash-looping. Its
// exit_code is the last exit code seen.
const ReasonRestarting = "restarting"

// AllocationRecord is the value of /allocations/<component>/<id>: where a
// replica runs and what it runs. It carries the spec it was placed with, so
// that an executor can (re)create the replica even after the component has
// changed and before the rollout reaches it.
type AllocationRecord struct {
	ID        string     `json:"id"`
	Component string     `json:"component"`
	Host      string     `json:"host"`
	Spec      string     `json:"spec"`
	Run       *Component `json:"run"`
	CreatedAt time.Time  `json:"created_at"`
}

// Key returns the allocation's key.
func (r *AllocationRecord) Key() string { return AllocationKey(r.Component, r.ID) }

// AllocationKey is /allocations/<component>/<id>.
func AllocationKey(component, id string) string { return AllocationsPrefix + component + "/" + id }

// AllocStatus is the value of /status/allocations/<id>, written by the
// executor of the allocation's host.
type AllocStatus struct {
	ID          string `json:"id"`
	Component   string `json:"component"`
	Host        string `json:"host"`
	Spec        string `json:"spec"`
	State       string `json:"state"`
	ExitCode    int    `json:"exit_code,omitempty"`
	Reason      string `json:"reason,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	// Since is when the executor saw the state begin.
	Since time.Time `json:"since"`
}

// same reports whether two statuses say the same, whatever their Since.
func (s AllocStatus) same(o AllocStatus) bool {
	s.Since, o.Since = time.Time{}, time.Time{}
	return s == o
}

// ComponentStatus is the value of /status/components/<name>, written by
// the leader.
type ComponentStatus struct {
	Name     string `json:"name"`
	Spec     string `json:"spec,omitempty"`
	Desired  int    `json:"desired"`
	Placed   int    `json:"placed"`
	Running  int    `json:"running"`
	Outdated int    `json:"outdated,omitempty"`
	// Failed counts the replicas whose executor reports them failed (an
	// image that cannot be pulled, say): see their /status/allocations.
	Failed int  `json:"failed,omitempty"`
	Paused bool `json:"paused,omitempty"`
	// Unplaced explains the replicas that could not be placed.
	Unplaced []string `json:"unplaced,omitempty"`
	// Error is set when the spec stored at /components/<name> is invalid.
	Error string `json:"error,omitempty"`
}

// CheckValue validates writes to the scheduler's keys, for
// cluster.Config.CheckValue: a component spec must parse and validate, and
// lives exactly one level under /components/.
func CheckValue(key string, value []byte) error {
	name, ok := strings.CutPrefix(key, ComponentsPrefix)
	if !ok {
		return nil
	}
	if name == "" || strings.Contains(name, "/") {
		return &fsm.Error{Code: fsm.CodeInvalid, Field: "key",
			Message: fmt.Sprintf("%q: a component lives at %s<name>", key, ComponentsPrefix)}
	}
	if _, err := ParseComponent(name, value); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return &fsm.Error{Code: fsm.CodeInvalid, Field: "value." + fe.Field, Message: "component spec: " + fe.Error()}
		}
		return err
	}
	return nil
}

// snapshot is what one pass of the leader read, at one revision.
type snapshot struct {
	rev        uint64
	components []*Component
	invalid    map[string]string // component -> why its spec is rejected
	compRev    map[string]uint64 // component -> mod revision
	hosts      []Host
	allocs     []Allocation               // of valid components
	records    map[string]*proto.KeyValue // allocation id -> its key-value
	statuses   map[string]AllocStatus     // allocation id -> status
	compStatus map[string][]byte          // component -> current status value
	guard      *proto.KeyValue            // nil when absent
}

// lister is what a snapshot is read from: an fsm.View.
type lister interface {
	List(prefix, after string, limit int) ([]*proto.KeyValue, string)
}

func listAll(v lister, prefix string) []*proto.KeyValue {
	var out []*proto.KeyValue
	after := ""
	for {
		items, next := v.List(prefix, after, 10000)
		out = append(out, items...)
		if next == "" {
			return out
		}
		after = next
	}
}

// readSnapshot reads the scheduler's inputs from a view of the state.
func readSnapshot(v lister, rev uint64, now time.Time) *snapshot {
	s := &snapshot{rev: rev, invalid: map[string]string{}, compRev: map[string]uint64{},
		records: map[string]*proto.KeyValue{}, statuses: map[string]AllocStatus{}, compStatus: map[string][]byte{}}
	for _, kv := range listAll(v, ComponentsPrefix) {
		name := strings.TrimPrefix(kv.Key, ComponentsPrefix)
		c, err := ParseComponent(name, kv.Value)
		if err != nil {
			s.invalid[name] = err.Error()
			continue
		}
		s.components = append(s.components, c)
		s.compRev[name] = kv.ModRevision
	}
	for _, kv := range listAll(v, cluster.HostsPrefix) {
		var h cluster.Host
		if json.Unmarshal(kv.Value, &h) != nil || h.Name == "" {
			continue
		}
		ph := Host{Name: h.Name, Status: string(h.Status), Labels: h.Labels,
			Capacity: Resources{CPU: h.Resources.CPU, Memory: h.Resources.Memory}}
		if h.Status == cluster.StatusFailed && !h.ChangedAt.IsZero() {
			ph.FailedFor = max(now.Sub(h.ChangedAt), 0)
		}
		if !h.Docker {
			ph.Ineligible = "no Docker engine"
		}
		s.hosts = append(s.hosts, ph)
	}
	for _, kv := range listAll(v, AllocStatusPrefix) {
		var st AllocStatus
		if json.Unmarshal(kv.Value, &st) == nil {
			s.statuses[strings.TrimPrefix(kv.Key, AllocStatusPrefix)] = st
		}
	}
	for _, kv := range listAll(v, AllocationsPrefix) {
		var r AllocationRecord
		if json.Unmarshal(kv.Value, &r) != nil || r.ID == "" || kv.Key != r.Key() {
			continue // not the scheduler's: left alone
		}
		if _, bad := s.invalid[r.Component]; bad {
			continue // kept as it is until the spec is fixed
		}
		st, ok := s.statuses[r.ID]
		s.records[r.ID] = kv
		s.allocs = append(s.allocs, Allocation{ID: r.ID, Component: r.Component, Host: r.Host, Spec: r.Spec,
			Running: ok && st.State == StateRunning && st.Spec == r.Spec, Runs: r.Run})
	}
	for _, kv := range listAll(v, ComponentStatusPrefix) {
		s.compStatus[strings.TrimPrefix(kv.Key, ComponentStatusPrefix)] = kv.Value
	}
	for _, kv := range listAll(v, GuardKey) {
		if kv.Key == GuardKey {
			s.guard = kv
		}
	}
	return s
}
