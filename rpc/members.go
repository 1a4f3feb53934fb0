package rpc

import (
	"encoding/json"
	"net/http"

	"github.com/dux-io/dux/proto"
)

// memberJSON is a member in GET /v1/cluster/members.
type memberJSON struct {
	Name      string            `json:"name"`
	Status    string            `json:"status"`
	Raft      string            `json:"raft"`
	Leader    bool              `json:"leader"`
	Addresses map[string]string `json:"addresses"`
	Labels    map[string]string `json:"labels"`
	Resources resourcesJSON     `json:"resources"`
	Docker    bool              `json:"docker"`
	Version   string            `json:"version,omitempty"`
}

type resourcesJSON struct {
	CPU    float64 `json:"cpu"`
	Memory uint64  `json:"memory"`
}

func toMemberJSON(m *proto.MemberInfo) memberJSON {
	out := memberJSON{Name: m.Name, Status: m.Status, Raft: m.Raft, Leader: m.Leader,
		Addresses: m.Addresses, Labels: m.Labels, Docker: m.Docker, Version: m.Version}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if m.Resources != nil {
		out.Resources = resourcesJSON{CPU: m.Resources.Cpu, Memory: m.Resources.Memory}
	}
	return out
}

// MembersJSON renders members as GET /v1/cluster/members does.
func MembersJSON(list []*proto.MemberInfo) ([]byte, error) {
	out := make([]memberJSON, 0, len(list))
	for _, m := range list {
		out = append(out, toMemberJSON(m))
	}
	return json.Marshal(map[string]any{"members": out})
}

func (h *httpAPI) members(w http.ResponseWriter, r *http.Request) {
	b, err := MembersJSON(h.b.MemberList())
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

// memberStatusJSON is a member in GET /v1/cluster/status: the member as in
// /v1/cluster/members, with its health, its Raft figures and its lag.
type memberStatusJSON struct {
	memberJSON
	Health       string  `json:"health"`
	Reachable    bool    `json:"reachable"`
	Error        string  `json:"error,omitempty"`
	RaftState    string  `json:"raft_state,omitempty"`
	Term         uint64  `json:"term"`
	CommitIndex  uint64  `json:"commit_index"`
	AppliedIndex uint64  `json:"applied_index"`
	Revision     uint64  `json:"revision"`
	LastIndex    uint64  `json:"last_index"`
	Lag          *uint64 `json:"lag"` // null when unknown
}

// StatusJSON renders the cluster's status as GET /v1/cluster/status does.
func StatusJSON(s *proto.ClusterStatusResponse) ([]byte, error) {
	members := make([]memberStatusJSON, 0, len(s.Members))
	for _, m := range s.Members {
		info := m.Member
		if info == nil {
			info = &proto.MemberInfo{}
		}
		members = append(members, memberStatusJSON{
			memberJSON: toMemberJSON(info), Health: m.Health, Reachable: m.Reachable, Error: m.Error,
			RaftState: m.RaftState, Term: m.Term, CommitIndex: m.CommitIndex, AppliedIndex: m.AppliedIndex,
			Revision: m.Revision, LastIndex: m.LastIndex, Lag: m.Lag,
		})
	}
	return json.Marshal(struct {
		Leader       string             `json:"leader"`
		Term         uint64             `json:"term"`
		CommitIndex  uint64             `json:"commit_index"`
		AppliedIndex uint64             `json:"applied_index"`
		Revision     uint64             `json:"revision"`
		AnsweredBy   string             `json:"answered_by"`
		Members      []memberStatusJSON `json:"members"`
	}{s.Leader, s.Term, s.CommitIndex, s.AppliedIndex, s.Revision, s.AnsweredBy, members})
}

func (h *httpAPI) status(w http.ResponseWriter, r *http.Request) {
	resp, err := h.b.ClusterStatus(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	b, err := StatusJSON(resp)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func (h *httpAPI) join(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Addresses []string `json:"addresses"`
	}
	if err := decodeBody(r, 64<<10, &body); err != nil {
		h.fail(w, err)
		return
	}
	k, err := h.b.JoinCluster(body.Addresses)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"joined": k})
}

func (h *httpAPI) leave(w http.ResponseWriter, r *http.Request) {
	if err := h.b.Leave(r.Context()); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "left"})
}

func (h *httpAPI) transferLeader(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, "to")
	if err != nil {
		h.fail(w, err)
		return
	}
	leader, err := h.b.TransferLeader(r.Context(), p.v.Get("to"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"leader": leader})
}

func (h *httpAPI) removePeer(w http.ResponseWriter, r *http.Request) {
	if err := h.b.RemovePeer(r.Context(), r.PathValue("id")); err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("id")})
}
