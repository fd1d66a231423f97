// Package api is shield's HTTP management API, built on net/http alone.
//
// Every request needs "Authorization: Bearer TOKEN" with a token from the
// api_tokens file; tokens are compared in constant time and a failure gets
// 401 and is reported through Options.OnAuthFailure. Request bodies are
// JSON, at most MaxBody bytes, with unknown fields refused; no endpoint
// takes a file path. The server has read, write and idle timeouts, speaks
// HTTP/1.1 only (no h2c) and listens on loopback unless told otherwise.
//
// The package knows nothing of CoreDNS: the plugin implements Backend.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Errors a Backend wraps so the API can choose the status code.
var (
	ErrBadRequest  = errors.New("bad request")   // 400
	ErrNotFound    = errors.New("not found")     // 404
	ErrUnavailable = errors.New("limit reached") // 503
)

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 8 << 10

// Limits of the audit endpoint.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	maxReason         = 512
)

// Backend is what the API manages. The shield plugin implements it. The
// actor passed to changes is "api:" followed by the token's name.
type Backend interface {
	Status() Status
	// Explain returns the verdict a query for name from client would get,
	// without recording, counting or changing anything. client may be the
	// zero Addr.
	Explain(name string, client netip.Addr) (Explanation, error)
	Quarantines() []Quarantine
	Quarantine(client string, ttl time.Duration, reason, actor string) (Quarantine, error)
	Release(client, actor string) (Quarantine, error)
	Blocks() []Block
	Block(name string, ttl time.Duration, reason, actor string) (Block, error)
	Unblock(name, actor string) (Block, error)
	// Audit returns up to limit recent audit records, newest first, each
	// one JSON object.
	Audit(limit int) []json.RawMessage
	// Verdicts lists the detection verdicts, one per registered domain.
	Verdicts() []Verdict
	// ClearVerdict removes every verdict on a registered domain and
	// returns what it was.
	ClearVerdict(domain, actor string) (Verdict, error)
	// PromoteVerdict makes a domain's verdict fleet-wide: an operator's
	// decision, with a reason.
	PromoteVerdict(domain, reason, actor string) (Verdict, error)
}

// Verdict is one registered domain's detection verdict.
type Verdict struct {
	Domain   string    `json:"domain"`
	Scope    string    `json:"scope"`             // client or fleet
	Clients  []string  `json:"clients,omitempty"` // the clients that earned it
	Score    int       `json:"score"`
	Detector string    `json:"detector"`
	Reasons  []string  `json:"reasons,omitempty"`
	Start    time.Time `json:"start"`
	Expires  time.Time `json:"expires"`
}

// PromoteRequest is the body of POST /v1/verdicts/{domain}/promote.
type PromoteRequest struct {
	Reason string `json:"reason"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Mode        string       `json:"mode"`
	Lists       []ListStatus `json:"lists"`
	Quarantines int          `json:"quarantines"`
	Blocks      int          `json:"emergency_blocks"`
}

// ListStatus describes one configured list.
type ListStatus struct {
	Name       string     `json:"name"`
	Kind       string     `json:"kind"` // blocklist, allowlist or walled_garden
	Format     string     `json:"format,omitempty"`
	Version    string     `json:"version,omitempty"`
	Entries    int        `json:"entries"`
	LastReload *time.Time `json:"last_reload,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
}

// Explanation is the answer of GET /v1/explain.
type Explanation struct {
	Name        string   `json:"name"`
	Client      string   `json:"client,omitempty"`
	Verdict     string   `json:"verdict"` // pass, allow, block, sinkhole, walled_garden, monitor ...
	Why         []string `json:"why,omitempty"`
	List        string   `json:"list,omitempty"`
	Rule        string   `json:"rule,omitempty"`
	ListVersion string   `json:"list_version,omitempty"`
	Score       int      `json:"score"`
	Reasons     []string `json:"reasons,omitempty"`
	Sticky      bool     `json:"sticky,omitempty"`
	// Scope is the scope of the sticky detection verdict that holds for
	// the client: "client" or "fleet".
	Scope            string      `json:"scope,omitempty"`
	RegisteredDomain string      `json:"registered_domain,omitempty"`
	Quarantine       *Quarantine `json:"quarantine,omitempty"`
	EmergencyBlock   *Block      `json:"emergency_block,omitempty"`
	WalledGarden     string      `json:"walled_garden,omitempty"`
}

// Quarantine is one quarantined client.
type Quarantine struct {
	Client   string    `json:"client"`
	Reason   string    `json:"reason,omitempty"`
	Actor    string    `json:"actor"`
	Start    time.Time `json:"start"`
	Expires  time.Time `json:"expires"`
	Evidence []string  `json:"evidence,omitempty"`
}

// Block is one emergency block.
type Block struct {
	Name    string    `json:"name"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor"`
	Start   time.Time `json:"start"`
	Expires time.Time `json:"expires"`
}

// QuarantineRequest is the body of POST /v1/quarantine.
type QuarantineRequest struct {
	Client string `json:"client"`
	TTL    string `json:"ttl,omitempty"` // a Go duration; empty is the default
	Reason string `json:"reason"`
}

// BlockRequest is the body of POST /v1/blocks.
type BlockRequest struct {
	Name   string `json:"name"`
	TTL    string `json:"ttl,omitempty"`
	Reason string `json:"reason"`
}

// Options hooks metrics in. Every field may be nil.
type Options struct {
	// OnRequest is called once per request with the endpoint (status,
	// explain, quarantine, blocks, audit, verdicts or other) and the
	// status code.
	OnRequest func(endpoint string, code int)
	// OnAuthFailure is called for every request refused with 401.
	OnAuthFailure func()
}

// NewHandler returns the API's handler.
func NewHandler(b Backend, tokens *Tokens, o Options) http.Handler {
	h := &handler{b: b, tokens: tokens, opt: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/status", h.status)
	h.mux.HandleFunc("GET /v1/explain", h.explain)
	h.mux.HandleFunc("GET /v1/quarantine", h.listQuarantine)
	h.mux.HandleFunc("POST /v1/quarantine", h.addQuarantine)
	h.mux.HandleFunc("DELETE /v1/quarantine/{client...}", h.release)
	h.mux.HandleFunc("GET /v1/blocks", h.listBlocks)
	h.mux.HandleFunc("POST /v1/blocks", h.addBlock)
	h.mux.HandleFunc("DELETE /v1/blocks/{name}", h.unblock)
	h.mux.HandleFunc("GET /v1/audit", h.audit)
	h.mux.HandleFunc("GET /v1/verdicts", h.listVerdicts)
	h.mux.HandleFunc("DELETE /v1/verdicts/{domain}", h.clearVerdict)
	h.mux.HandleFunc("POST /v1/verdicts/{domain}/promote", h.promoteVerdict)
	return h
}

type handler struct {
	b      Backend
	tokens *Tokens
	opt    Options
	mux    *http.ServeMux
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// endpoint returns the bounded metric label of a request path.
func endpoint(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1/")
	if !ok {
		return "other"
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	switch rest {
	case "status", "explain", "quarantine", "blocks", "audit", "verdicts":
		return rest
	}
	return "other"
}

type ctxKey struct{}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if h.opt.OnRequest != nil {
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			h.opt.OnRequest(endpoint(r.URL.Path), code)
		}
	}()
	sw.Header().Set("Cache-Control", "no-store")
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	name, ok := h.tokens.Check(r.Header.Get("Authorization"))
	if !ok {
		if h.opt.OnAuthFailure != nil {
			h.opt.OnAuthFailure()
		}
		sw.Header().Set("WWW-Authenticate", `Bearer realm="shield"`)
		writeError(sw, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	h.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "api:"+name)))
}

// actor returns "api:NAME" for the token that authenticated r.
func actor(r *http.Request) string { s, _ := r.Context().Value(ctxKey{}).(string); return s }

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeBackendError maps a Backend error to its status code.
func writeBackendError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err.Error())
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.b.Status())
}

func (h *handler) explain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		writeError(w, http.StatusBadRequest, "name is required")
		return
	}
	var client netip.Addr
	if c := q.Get("client"); c != "" {
		a, err := netip.ParseAddr(c)
		if err != nil || a.Zone() != "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("client %q is not an IP address", c))
			return
		}
		client = a.Unmap()
	}
	e, err := h.b.Explain(name, client)
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (h *handler) listQuarantine(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"quarantines": nonNil(h.b.Quarantines())})
}

func (h *handler) addQuarantine(w http.ResponseWriter, r *http.Request) {
	data, code, err := readBody(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	req, ttl, err := DecodeQuarantine(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q, err := h.b.Quarantine(req.Client, ttl, req.Reason, actor(r))
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, q)
}

func (h *handler) release(w http.ResponseWriter, r *http.Request) {
	q, err := h.b.Release(r.PathValue("client"), actor(r))
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

func (h *handler) listBlocks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"blocks": nonNil(h.b.Blocks())})
}

func (h *handler) addBlock(w http.ResponseWriter, r *http.Request) {
	data, code, err := readBody(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	req, ttl, err := DecodeBlock(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := h.b.Block(req.Name, ttl, req.Reason, actor(r))
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

func (h *handler) unblock(w http.ResponseWriter, r *http.Request) {
	b, err := h.b.Unblock(r.PathValue("name"), actor(r))
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (h *handler) audit(w http.ResponseWriter, r *http.Request) {
	limit := DefaultAuditLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAuditLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", v, MaxAuditLimit))
			return
		}
		limit = n
	}
	recs := h.b.Audit(limit)
	if recs == nil {
		recs = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs})
}

func (h *handler) listVerdicts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"verdicts": nonNil(h.b.Verdicts())})
}

func (h *handler) clearVerdict(w http.ResponseWriter, r *http.Request) {
	v, err := h.b.ClearVerdict(r.PathValue("domain"), actor(r))
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *handler) promoteVerdict(w http.ResponseWriter, r *http.Request) {
	data, code, err := readBody(w, r)
	if err != nil {
		writeError(w, code, err.Error())
		return
	}
	req, err := DecodePromote(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, err := h.b.PromoteVerdict(r.PathValue("domain"), req.Reason, actor(r))
	if err != nil {
		writeBackendError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// readBody reads a JSON request body of at most MaxBody bytes. On error it
// returns the status code to answer with.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: want application/json", ct)
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", MaxBody)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %v", err)
	}
	return data, 0, nil
}

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON body: data after the object")
	}
	return nil
}

// parseTTL parses an optional TTL: "" is 0 (the server's default).
func parseTTL(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("ttl %q: not a duration such as 30m or 2h", v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("ttl %q: must be positive", v)
	}
	return d, nil
}

func checkReason(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("reason is required")
	}
	if len(v) > maxReason {
		return fmt.Errorf("reason longer than %d bytes", maxReason)
	}
	// The reason goes into answers' EXTRA-TEXT, log lines and audit
	// records: no line breaks or other control characters.
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("reason has a control character (%U)", r)
		}
	}
	return nil
}

// DecodeQuarantine parses and checks the body of POST /v1/quarantine. The
// client itself is checked by the Backend.
func DecodeQuarantine(data []byte) (QuarantineRequest, time.Duration, error) {
	var req QuarantineRequest
	if err := decodeStrict(data, &req); err != nil {
		return req, 0, err
	}
	if req.Client == "" {
		return req, 0, errors.New("client is required")
	}
	if err := checkReason(req.Reason); err != nil {
		return req, 0, err
	}
	ttl, err := parseTTL(req.TTL)
	return req, ttl, err
}

// DecodeBlock parses and checks the body of POST /v1/blocks.
func DecodeBlock(data []byte) (BlockRequest, time.Duration, error) {
	var req BlockRequest
	if err := decodeStrict(data, &req); err != nil {
		return req, 0, err
	}
	if req.Name == "" {
		return req, 0, errors.New("name is required")
	}
	if err := checkReason(req.Reason); err != nil {
		return req, 0, err
	}
	ttl, err := parseTTL(req.TTL)
	return req, ttl, err
}

// DecodePromote parses and checks the body of POST
// /v1/verdicts/{domain}/promote.
func DecodePromote(data []byte) (PromoteRequest, error) {
	var req PromoteRequest
	if err := decodeStrict(data, &req); err != nil {
		return req, err
	}
	return req, checkReason(req.Reason)
}
