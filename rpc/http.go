package rpc

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dux-io/dux/cluster"
	"github.com/dux-io/dux/fsm"
	"github.com/dux-io/dux/proto"
)

// NewHTTP returns the HTTP/JSON API: /v1/state, /v1/txn, /v1/lease,
// /v1/cluster, /v1/snapshot, /v1/graph (given a Grapher), /healthz and
// /readyz.
func NewHTTP(cfg Config) http.Handler {
	cfg.maxMsg()
	h := &httpAPI{b: cfg.Backend, d: cfg.Dispatcher, g: cfg.Graph, maxValue: cfg.MaxValueBytes, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/txn", h.txn)
	mux.HandleFunc("POST /v1/lease", h.leaseGrant)
	mux.HandleFunc("POST /v1/lease/{id}/keepalive", h.leaseKeepAlive)
	mux.HandleFunc("DELETE /v1/lease/{id}", h.leaseRevoke)
	mux.HandleFunc("GET /v1/cluster/leader", h.leader)
	mux.HandleFunc("GET /v1/cluster/raft", h.raftConfiguration)
	mux.HandleFunc("GET /v1/cluster/members", h.members)
	mux.HandleFunc("GET /v1/cluster/status", h.status)
	mux.HandleFunc("POST /v1/cluster/join", h.join)
	mux.HandleFunc("POST /v1/cluster/leave", h.leave)
	mux.HandleFunc("POST /v1/cluster/transfer-leader", h.transferLeader)
	mux.HandleFunc("DELETE /v1/cluster/peers/{id}", h.removePeer)
	mux.HandleFunc("GET /v1/subscribe", h.subscribe)
	if h.g != nil {
		mux.HandleFunc("GET /v1/graph", h.graph)
	}
	mux.HandleFunc("GET /v1/snapshot", h.snapshot)
	mux.HandleFunc("POST /v1/snapshot", h.restore)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", h.ready)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: errorJSON{
			Code: "not_found", Message: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)}})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// State keys and channels bypass the mux, which would clean "//"
		// and ".." out of the path and redirect: a malformed key must be
		// refused, not silently turned into another key.
		if key, ok := strings.CutPrefix(r.URL.Path, "/v1/state"); ok && (key == "" || key[0] == '/') {
			r.Pattern = "/v1/state/{key...}" // what a ServeMux would set; Metrics.HTTP reads it
			h.state(w, r, key)
			return
		}
		if channel, ok := strings.CutPrefix(r.URL.Path, "/v1/publish"); ok && (channel == "" || channel[0] == '/') {
			r.Pattern = "/v1/publish/{channel...}"
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorJSON{
					Code: "method_not_allowed", Message: r.Method + " is not allowed on /v1/publish"}})
				return
			}
			h.publish(w, r, channel)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

type httpAPI struct {
	b        Backend
	d        Subscriber
	g        Grapher
	maxValue int
	log      *slog.Logger
}

// kvJSON is a KeyValue in HTTP responses; the value is the JSON document itself.
type kvJSON struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value,omitempty"`
	CreateRevision uint64          `json:"create_revision"`
	ModRevision    uint64          `json:"mod_revision"`
	Version        uint64          `json:"version"`
	Lease          uint64          `json:"lease"`
	Origin         string          `json:"origin,omitempty"`
}

func toKVJSON(kv *proto.KeyValue) kvJSON {
	return kvJSON{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease, Origin: kv.Origin}
}

func toKVsJSON(kvs []*proto.KeyValue) []kvJSON {
	out := make([]kvJSON, len(kvs))
	for i, kv := range kvs {
		out[i] = toKVJSON(kv)
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (h *httpAPI) fail(w http.ResponseWriter, err error) {
	code, body := toHTTP(err)
	if code == http.StatusInternalServerError {
		h.log.Error("http request failed", "error", err)
	}
	writeJSON(w, code, body)
}

func badParam(name, format string, args ...any) error {
	return &fsm.Error{Code: fsm.CodeInvalid, Field: name, Message: fmt.Sprintf(format, args...)}
}

// params reads query parameters, refusing any not in allowed.
type params struct{ v url.Values }

func parseParams(r *http.Request, allowed ...string) (params, error) {
	v := r.URL.Query()
	for name := range v {
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return params{}, badParam(name, "unknown query parameter %q (allowed: %s)", name, strings.Join(allowed, ", "))
		}
	}
	return params{v}, nil
}

func (p params) has(name string) bool { return p.v.Has(name) }

func (p params) bool(name string) (bool, error) {
	s := p.v.Get(name)
	if s == "" {
		return p.v.Has(name), nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badParam(name, "%s=%q is not a boolean", name, s)
	}
	return b, nil
}

func (p params) uint(name string) (uint64, error) {
	s := p.v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, badParam(name, "%s=%q is not a non-negative integer", name, s)
	}
	return n, nil
}

func (p params) consistency() (proto.Consistency, error) {
	switch s := p.v.Get("consistency"); s {
	case "", "linearizable":
		return proto.Consistency_LINEARIZABLE, nil
	case "stale":
		return proto.Consistency_STALE, nil
	default:
		return 0, badParam("consistency", "consistency=%q: want linearizable or stale", s)
	}
}

func (h *httpAPI) state(w http.ResponseWriter, r *http.Request, key string) {
	var err error
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		err = h.get(w, r, key)
	case http.MethodPut:
		err = h.put(w, r, key)
	case http.MethodDelete:
		err = h.delete(w, r, key)
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errorJSON{
			Code: "method_not_allowed", Message: r.Method + " is not allowed on /v1/state"}})
		return
	}
	if err != nil {
		h.fail(w, err)
	}
}

func (h *httpAPI) get(w http.ResponseWriter, r *http.Request, key string) error {
	p, err := parseParams(r, "prefix", "limit", "after", "consistency", "keys_only")
	if err != nil {
		return err
	}
	c, err := p.consistency()
	if err != nil {
		return err
	}
	prefix, err := p.bool("prefix")
	if err != nil {
		return err
	}
	if !prefix {
		resp, err := h.b.Get(r.Context(), &proto.GetRequest{Key: key, Consistency: c})
		if err != nil {
			return err
		}
		w.Header().Set("X-Dux-Revision", strconv.FormatUint(resp.Revision, 10))
		writeJSON(w, http.StatusOK, toKVJSON(resp.Kv))
		return nil
	}
	if key == "" {
		key = "/"
	}
	limit, err := p.uint("limit")
	if err != nil {
		return err
	}
	if limit > 100000 {
		return badParam("limit", "limit %d is more than 100000", limit)
	}
	keysOnly, err := p.bool("keys_only")
	if err != nil {
		return err
	}
	resp, err := h.b.List(r.Context(), &proto.ListRequest{
		Prefix: key, After: p.v.Get("after"), Limit: uint32(limit), Consistency: c, KeysOnly: keysOnly,
	})
	if err != nil {
		return err
	}
	w.Header().Set("X-Dux-Revision", strconv.FormatUint(resp.Revision, 10))
	writeJSON(w, http.StatusOK, struct {
		Revision uint64   `json:"revision"`
		Items    []kvJSON `json:"items"`
		Next     string   `json:"next,omitempty"`
	}{resp.Revision, toKVsJSON(resp.Items), resp.Next})
	return nil
}

func origin(r *http.Request, p params) string {
	if o := p.v.Get("origin"); o != "" {
		return o
	}
	return r.Header.Get("X-Dux-Origin")
}

func (h *httpAPI) put(w http.ResponseWriter, r *http.Request, key string) error {
	p, err := parseParams(r, "cas", "lease", "origin", "prev_kv")
	if err != nil {
		return err
	}
	req := &proto.PutRequest{Key: key, Origin: origin(r, p)}
	if req.Lease, err = p.uint("lease"); err != nil {
		return err
	}
	if p.has("cas") {
		cas, err := p.uint("cas")
		if err != nil {
			return err
		}
		req.CasRevision = &cas
	}
	if req.PrevKv, err = p.bool("prev_kv"); err != nil {
		return err
	}
	if req.Value, err = readValue(r, h.maxValue); err != nil {
		return err
	}
	resp, err := h.b.Put(r.Context(), req)
	if err != nil {
		return err
	}
	out := struct {
		Revision uint64  `json:"revision"`
		PrevKV   *kvJSON `json:"prev_kv,omitempty"`
	}{Revision: resp.Revision}
	if resp.PrevKv != nil {
		kv := toKVJSON(resp.PrevKv)
		out.PrevKV = &kv
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *httpAPI) delete(w http.ResponseWriter, r *http.Request, key string) error {
	p, err := parseParams(r, "prefix", "cas", "origin")
	if err != nil {
		return err
	}
	req := &proto.DeleteRequest{Key: key, Origin: origin(r, p)}
	if req.Prefix, err = p.bool("prefix"); err != nil {
		return err
	}
	if req.Prefix && key == "" {
		req.Key = "/"
	}
	if p.has("cas") {
		cas, err := p.uint("cas")
		if err != nil {
			return err
		}
		req.CasRevision = &cas
	}
	resp, err := h.b.Delete(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"revision": resp.Revision, "deleted": resp.Deleted})
	return nil
}

// readValue reads a request body of at most limit bytes, and one byte more,
// so that an oversized body is refused by the same validation (and
// message) as any other value rather than cut short.
func readValue(r *http.Request, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, badParam("value", "read request body: %v", err)
	}
	return b, nil
}

// decodeBody decodes a JSON request body strictly: unknown fields and
// trailing data are errors.
func decodeBody(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badParam("body", "invalid JSON body: %v", err)
	}
	if dec.More() {
		return badParam("body", "invalid JSON body: trailing data after the document")
	}
	return nil
}

func (h *httpAPI) leaseGrant(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TTL int64 `json:"ttl"`
	}
	if err := decodeBody(r, 4096, &body); err != nil {
		h.fail(w, err)
		return
	}
	resp, err := h.b.LeaseGrant(r.Context(), &proto.LeaseGrantRequest{TtlSeconds: body.TTL})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": resp.Id, "ttl": resp.TtlSeconds, "revision": resp.Revision})
}

func leaseID(r *http.Request) (uint64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, badParam("id", "lease id %q is not a positive integer", s)
	}
	return id, nil
}

func (h *httpAPI) leaseKeepAlive(w http.ResponseWriter, r *http.Request) {
	id, err := leaseID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	resp, err := h.b.LeaseKeepAlive(r.Context(), &proto.LeaseKeepAliveRequest{Id: id})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": resp.Id, "ttl": resp.TtlSeconds})
}

func (h *httpAPI) leaseRevoke(w http.ResponseWriter, r *http.Request) {
	id, err := leaseID(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	resp, err := h.b.LeaseRevoke(r.Context(), &proto.LeaseRevokeRequest{Id: id})
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"revision": resp.Revision, "deleted": resp.Deleted})
}

func (h *httpAPI) leader(w http.ResponseWriter, r *http.Request) {
	l := h.b.Leader()
	if l.Id == "" {
		h.fail(w, cluster.ErrNoLeader)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": l.Id, "raft_address": l.RaftAddress,
		"grpc_address": l.GrpcAddress, "http_address": l.HttpAddress, "term": l.Term})
}

func (h *httpAPI) raftConfiguration(w http.ResponseWriter, r *http.Request) {
	resp, err := h.b.RaftConfiguration()
	if err != nil {
		h.fail(w, err)
		return
	}
	type server struct {
		ID       string `json:"id"`
		Address  string `json:"address"`
		Suffrage string `json:"suffrage"`
		Leader   bool   `json:"leader"`
	}
	out := struct {
		Index   uint64   `json:"index"`
		Servers []server `json:"servers"`
	}{Index: resp.Index, Servers: []server{}}
	for _, s := range resp.Servers {
		out.Servers = append(out.Servers, server{s.Id, s.Address, s.Suffrage, s.Leader})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *httpAPI) snapshot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	// Errors after the first byte can only cut the stream short; the
	// snapshot's end record lets a reader tell.
	if _, err := h.b.Snapshot(r.Context(), w); err != nil {
		h.log.Warn("snapshot stream failed", "error", err)
		h.fail(w, err)
	}
}

func (h *httpAPI) restore(w http.ResponseWriter, r *http.Request) {
	rev, err := h.b.Restore(r.Context(), r.Body)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]uint64{"revision": rev})
}

func (h *httpAPI) ready(w http.ResponseWriter, r *http.Request) {
	if err := h.b.Ready(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
