package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

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
// fields, duplicate keys and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON body: data after the object")
	}
	return checkDuplicateKeys(data)
}

// checkDuplicateKeys returns an error if an object anywhere in the JSON
// text data has the same key twice. encoding/json keeps the last value
// and matches field names without regard to case, so {"client":"a",
// "Client":"b"} would show one value to a reviewer of the request and
// act on another: keys that differ only in case are duplicates too. data
// must be valid JSON (decodeStrict checks that first).
func checkDuplicateKeys(data []byte) error {
	var stack []*jsonFrame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed JSON body: %v", err)
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.keys != nil && top.wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone(stack)
				continue
			}
			k, _ := tok.(string)
			f := strings.ToLower(strings.ToUpper(k))
			if top.keys[f] {
				return fmt.Errorf("malformed JSON body: duplicate key %q", k)
			}
			top.keys[f] = true
			top.wantKey = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &jsonFrame{keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &jsonFrame{})
		case json.Delim(']'), json.Delim('}'):
			stack = stack[:len(stack)-1]
			valueDone(stack)
		default:
			valueDone(stack)
		}
	}
}

// jsonFrame is an open object or array in checkDuplicateKeys.
type jsonFrame struct {
	keys    map[string]bool // folded keys seen; nil for an array
	wantKey bool            // an object whose next token is a key or '}'
}

// valueDone notes that a value ended inside the innermost container: an
// object then wants its next key.
func valueDone(stack []*jsonFrame) {
	if n := len(stack); n > 0 && stack[n-1].keys != nil {
		stack[n-1].wantKey = true
	}
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
	// records: no line breaks or other control characters, and no format
	// characters either (a bidi override such as U+202E makes a SIEM or a
	// terminal show text other than what is stored).
	if i := strings.IndexFunc(v, badReasonRune); i >= 0 {
		r, _ := utf8.DecodeRuneInString(v[i:])
		if unicode.Is(unicode.Cc, r) {
			return fmt.Errorf("reason has a control character (%U)", r)
		}
		return fmt.Errorf("reason has a format character such as a bidi override or a line separator (%U)", r)
	}
	return nil
}

// badReasonRune reports whether r may not appear in a reason: Unicode
// categories Cc (control), Cf (format: bidi controls, zero-width
// characters), Zl and Zp (line and paragraph separators).
func badReasonRune(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
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
