package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
)

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
	var q Quarantine
	if fb, ok := h.b.(ForceBackend); ok {
		q, err = fb.QuarantineForce(req.Client, ttl, req.Reason, actor(r), req.Force)
	} else {
		q, err = h.b.Quarantine(req.Client, ttl, req.Reason, actor(r))
	}
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
	var b Block
	if fb, ok := h.b.(ForceBackend); ok {
		b, err = fb.BlockForce(req.Name, ttl, req.Reason, actor(r), req.Force)
	} else {
		b, err = h.b.Block(req.Name, ttl, req.Reason, actor(r))
	}
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

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
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
