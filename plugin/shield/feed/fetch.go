package feed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// errRedirect marks a redirect the fetcher refuses to follow.
var errRedirect = errors.New("redirect refused")

// checkRedirect follows at most MaxRedirects redirects, refuses a loop at
// once (a URL seen before in the chain) and never leaves https for http.
func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > f.opt.MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", errRedirect, f.opt.MaxRedirects)
	}
	next := req.URL.String()
	for _, v := range via {
		if v.URL.String() == next {
			return fmt.Errorf("%w: a loop back to %s", errRedirect, redactURL(req.URL))
		}
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: from https to %s", errRedirect, redactURL(req.URL))
	}
	return nil
}

// fetch makes one attempt. The caller holds fetchMu.
func (f *Fetcher) fetch(parent context.Context) (r Result) {
	if f.xfr != nil {
		return f.fetchXFR(parent)
	}
	r = Result{List: f.list.Name(), URL: f.redacted, Start: time.Now()}
	if s := f.list.Snapshot(); s != nil {
		r.Version = s.Version
	}
	ctx, cancel := context.WithTimeout(parent, f.opt.Timeout)
	defer cancel()
	defer context.AfterFunc(f.ctx, cancel)() // Stop ends any fetch, the loop's or a caller's
	defer func() { r.Elapsed = time.Since(r.Start) }()
	fail := func(outcome string, err error) Result {
		if ctx.Err() == context.DeadlineExceeded && parent.Err() == nil && f.ctx.Err() == nil {
			// Whatever broke last, the time cap broke it.
			outcome, err = RefusedTimeout, fmt.Errorf("the fetch ran past its time cap of %s", f.opt.Timeout)
		}
		r.Outcome = outcome
		r.Err = &Error{List: r.List, URL: r.URL, Status: r.Status, Outcome: outcome, Err: err}
		return r
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return fail(ErrorLocal, err)
	}
	req.Header.Set("User-Agent", f.opt.UserAgent)
	req.Header.Set("Accept-Encoding", "gzip")
	// Ask whether the copy in force changed only when the validators
	// describe that very copy: a 304 must never stand for content the
	// list does not hold.
	conditional := r.Version != "" && f.val.version() == r.Version &&
		(f.val.ETag != "" || f.val.LastModified != "")
	if conditional {
		if f.val.ETag != "" {
			req.Header.Set("If-None-Match", f.val.ETag)
		}
		if f.val.LastModified != "" {
			req.Header.Set("If-Modified-Since", f.val.LastModified)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if resp != nil { // the redirect that CheckRedirect refused
			r.Status = resp.StatusCode
			resp.Body.Close()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message quotes the URL unredacted
		}
		return fail(classify(err))
	}
	defer func() {
		// Read a little of what is left so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	r.Status = resp.StatusCode
	switch {
	case resp.StatusCode == http.StatusNotModified && conditional:
		return f.notModified(r)
	case resp.StatusCode == http.StatusPartialContent:
		return fail(RefusedTruncated, errors.New("a partial body (206) to a request for all of it"))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return fail(RefusedStatus, fmt.Errorf("status %q", resp.Status))
	}
	if o := Sniff(resp.Header.Get("Content-Type"), nil); o != "" {
		return fail(o, fmt.Errorf("Content-Type %q is not a list", resp.Header.Get("Content-Type")))
	}
	body, head, o, err := decode(resp, f.opt.MaxBytes)
	if err != nil {
		return fail(o, err)
	}
	if o := Sniff("", head); o != "" {
		return fail(o, fmt.Errorf("the body is a document, not a list: %q", printable(head, 40)))
	}

	tmp, err := tempFile(f.cache)
	if err != nil {
		return fail(ErrorLocal, err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(tmp, io.TeeReader(body, h))
	r.Bytes = n
	if err != nil {
		if isWriteErr(err) {
			return fail(ErrorLocal, err)
		}
		return fail(classify(err))
	}
	sum := h.Sum(nil)
	if f.pin != nil && !bytes.Equal(sum, f.pin) {
		return fail(RefusedChecksum, fmt.Errorf("sha256 %x, pinned %x", sum, f.pin))
	}
	if f.cache != nil { // it becomes the cached copy: make it durable first
		if err := tmp.Sync(); err != nil {
			return fail(ErrorLocal, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fail(ErrorLocal, err)
	}
	// The parse and every check a local file passes, on the download.
	changed, err := f.list.LoadFile(tmp.Name())
	if err != nil {
		var le *blocklist.LoadError
		if errors.As(err, &le) {
			return fail("refused_"+le.Reason, err)
		}
		return fail(ErrorLocal, err)
	}
	r.Changed = changed
	r.Outcome = Unchanged
	if changed {
		r.Outcome = Updated
	}
	r.Version = f.list.Snapshot().Version
	now := time.Now()
	m := meta{URLHash: urlHash(f.url), URL: f.redacted, ETag: resp.Header.Get("ETag"),
		LastModified: resp.Header.Get("Last-Modified"), Fetched: now, Modified: now,
		SHA256: hex.EncodeToString(sum), Bytes: n}
	if !changed && f.val.SHA256 == m.SHA256 && !f.val.Modified.IsZero() {
		m.Modified = f.val.Modified
	}
	if f.cache != nil {
		var err error
		if changed || f.val.SHA256 != m.SHA256 {
			keep = true
			err = f.cache.commit(tmp.Name(), &m)
			if err != nil {
				os.Remove(tmp.Name())
			}
		} else {
			err = f.cache.writeMeta(&m)
		}
		if err != nil {
			r.Err = &Error{List: r.List, URL: r.URL, Status: r.Status, Outcome: ErrorLocal,
				Err: fmt.Errorf("list in force, but the disk cache was not updated: %w", err)}
		}
	}
	f.val = m
	return r
}

// notModified handles a 304: the copy in force is current.
func (f *Fetcher) notModified(r Result) Result {
	r.Outcome = NotModified
	f.val.Fetched = time.Now()
	if f.cache != nil {
		if err := f.cache.writeMeta(&f.val); err != nil {
			r.Err = &Error{List: r.List, URL: r.URL, Status: r.Status, Outcome: ErrorLocal,
				Err: fmt.Errorf("the disk cache was not updated: %w", err)}
		}
	}
	return r
}

// isWriteErr reports whether err came from writing the temporary file
// rather than from reading the body.
func isWriteErr(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe)
}

// printable returns up to n bytes of b with anything but printable ASCII
// replaced by '.', for an error message that quotes a body.
func printable(b []byte, n int) string {
	b = bytes.TrimLeft(b, " \t\r\n\xef\xbb\xbf")
	if len(b) > n {
		b = b[:n]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		out[i] = c
	}
	return string(out)
}
