package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// NewHandler returns the API's handler.
func NewHandler(b Backend, tokens *Tokens, o Options) http.Handler {
	if o.Throttle == nil {
		o.Throttle = NewAuthThrottle(ThrottleOptions{})
	}
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
	src := sourceAddr(r.RemoteAddr)
	if wait, ok := h.opt.Throttle.Allow(src); !ok {
		// Every request, a right token too: otherwise the answer would
		// still tell a guess right from wrong.
		if h.opt.OnThrottle != nil {
			h.opt.OnThrottle()
		}
		sw.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(wait)))
		writeError(sw, http.StatusTooManyRequests, "too many failed authentications from this address; retry later")
		return
	}
	name, scope, ok := h.tokens.Authenticate(r.Header.Get("Authorization"))
	if !ok {
		h.opt.Throttle.Fail(src)
		if h.opt.OnAuthFailure != nil {
			h.opt.OnAuthFailure()
		}
		sw.Header().Set("WWW-Authenticate", `Bearer realm="shield"`)
		writeError(sw, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	if !scope.Allows(r.Method) {
		if h.opt.OnForbidden != nil {
			h.opt.OnForbidden()
		}
		writeError(sw, http.StatusForbidden, fmt.Sprintf("token %q is read-only: %s needs a write token", name, r.Method))
		return
	}
	h.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "api:"+name)))
}

// sourceAddr returns the address of a request's peer, unmapped; the zero
// Addr if RemoteAddr is not IP:PORT. Forwarding headers are not trusted.
func sourceAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
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
	case errors.Is(err, ErrNeedsForce):
		code = http.StatusConflict
	}
	writeError(w, code, err.Error())
}
