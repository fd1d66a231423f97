package feed

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// sniffLen is how much of the decoded body Sniff looks at.
const sniffLen = 512

// Sniff returns RefusedHTML or RefusedJSON when a feed response is an
// HTML or JSON document rather than a list, judged by its Content-Type and
// by head, the first bytes of the decoded body; otherwise "". Servers and
// captive portals answer 200 with an error or login page, and a list that
// replaced the one in force with such a page would drop every name.
//
// HTML: a text/html or application/xhtml+xml type, or a body that opens
// (after a byte order mark and white space) with "<!doctype", "<html",
// "<head", "<body", "<!--" or "<?xml". JSON: an application/json or
// "+json" type, or a body that opens with "{", or with "[" followed by a
// JSON value ("[Adblock Plus 2.0]" is an adblock header, not JSON). No
// list format shield reads is JSON; a JSON format added one day would have
// to be exempted here.
func Sniff(contentType string, head []byte) string {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil {
		switch {
		case mt == "text/html", mt == "application/xhtml+xml":
			return RefusedHTML
		case mt == "application/json", strings.HasSuffix(mt, "+json"):
			return RefusedJSON
		}
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	head = bytes.TrimLeft(head, " \t\r\n\f\v")
	if len(head) == 0 {
		return ""
	}
	switch head[0] {
	case '<':
		for _, p := range []string{"<!doctype", "<html", "<head", "<body", "<!--", "<?xml"} {
			if len(head) >= len(p) && strings.EqualFold(string(head[:len(p)]), p) {
				return RefusedHTML
			}
		}
	case '{':
		return RefusedJSON
	case '[':
		rest := bytes.TrimLeft(head[1:], " \t\r\n")
		if len(rest) == 0 {
			return ""
		}
		switch c := rest[0]; {
		case c == '"', c == '{', c == '[', c == ']', c == '-', c >= '0' && c <= '9':
			return RefusedJSON
		case bytes.HasPrefix(rest, []byte("true")), bytes.HasPrefix(rest, []byte("false")), bytes.HasPrefix(rest, []byte("null")):
			return RefusedJSON
		}
	}
	return ""
}

// errTooBig ends a body that went past the size cap.
var errTooBig = errors.New("body is bigger than the size cap")

// capReader returns errTooBig once more than n bytes were read.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errTooBig
	}
	return n, err
}

// gzipFailure marks an error of a gzip stream, so that it reads as a
// truncated or corrupt body rather than a network failure.
type gzipFailure struct{ err error }

func (g *gzipFailure) Error() string { return "gzip stream: " + g.err.Error() }
func (g *gzipFailure) Unwrap() error { return g.err }

type gzipReader struct{ zr *gzip.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		err = &gzipFailure{err}
	}
	return n, err
}

// decode returns the list text of a response body: the Content-Encoding
// undone, then, when what remains is itself a gzip file (a ".gz" feed),
// that file decompressed. raw and decoded bytes are both capped at max.
// It returns the reader, the first bytes of the text for Sniff, and an
// outcome and error when the body cannot be read as announced.
func decode(resp *http.Response, max int64) (io.Reader, []byte, string, error) {
	var r io.Reader = &capReader{r: resp.Body, left: max}
	switch ce := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			o, err := classify(&gzipFailure{fmt.Errorf("Content-Encoding is gzip but the body is not: %w", err)})
			return nil, nil, o, err
		}
		r = gzipReader{zr}
	default:
		return nil, nil, RefusedEncoding, fmt.Errorf("unsupported Content-Encoding %q", ce)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, _ := br.Peek(2); blocklist.IsGzip(magic) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			o, err := classify(&gzipFailure{err})
			return nil, nil, o, err
		}
		br = bufio.NewReaderSize(gzipReader{zr}, 64<<10)
	}
	head, err := br.Peek(sniffLen)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		o, err := classify(err)
		return nil, nil, o, err
	}
	return &capReader{r: br, left: max}, head, "", nil
}

// classify returns the outcome and error for a failed request or body
// read: the time cap, the size cap, a redirect refusal, a broken stream,
// or else the network.
func classify(err error) (string, error) {
	var gf *gzipFailure
	var fe flate.CorruptInputError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return RefusedTimeout, errors.New("the fetch ran past its time cap")
	case errors.Is(err, errTooBig):
		return RefusedSize, err
	case errors.Is(err, errRedirect):
		return RefusedRedirect, err
	case errors.As(err, &gf), errors.As(err, &fe), errors.Is(err, io.ErrUnexpectedEOF):
		return RefusedTruncated, err
	}
	return ErrorNetwork, err
}
