package blocklist

import (
	"bytes"
	"io"
)

// cutHash returns line up to its first '#', which starts a comment in the
// hosts, domains and wildcard formats (a name never contains '#').
func cutHash(line []byte) []byte {
	if i := bytes.IndexByte(line, '#'); i >= 0 {
		return line[:i]
	}
	return line
}

// indexInlineHash returns the index of the first '#' that follows white
// space, or -1.
func indexInlineHash(line []byte) int {
	for i := 1; i < len(line); i++ {
		if line[i] == '#' && isSpace(line[i-1]) {
			return i
		}
	}
	return -1
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// trimBOM removes a UTF-8 byte order mark from the start of line.
func trimBOM(line []byte) []byte {
	return bytes.TrimPrefix(line, bom)
}

// spaceTab and zoneSepTab mark the bytes that separate fields: ASCII white
// space, and in zone files also parentheses.
var spaceTab, zoneSepTab = func() (sp, zs [256]bool) {
	for _, c := range []byte(" \t\v\f\r\n") {
		sp[c], zs[c] = true, true
	}
	zs['('], zs[')'] = true, true
	return sp, zs
}()

// isSpace reports whether c is ASCII white space.
func isSpace(c byte) bool { return spaceTab[c] }

// trimSpace removes ASCII white space from both ends of b.
func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// nextField returns the first white-space separated field of b and the
// rest of b after the white space that follows it.
func nextField(b []byte) (field, rest []byte) {
	return splitField(b, &spaceTab)
}

// nextZoneField is nextField for zone files, where parentheses separate
// fields too.
func nextZoneField(b []byte) (field, rest []byte) {
	return splitField(b, &zoneSepTab)
}

// splitField returns the first field of b delimited by the bytes marked in
// sep, and the rest of b after the separators that follow it.
func splitField(b []byte, sep *[256]bool) (field, rest []byte) {
	i := 0
	for i < len(b) && sep[b[i]] {
		i++
	}
	j := i
	for j < len(b) && !sep[b[j]] {
		j++
	}
	field = b[i:j]
	for j < len(b) && sep[b[j]] {
		j++
	}
	return field, b[j:]
}

// lineReader splits a stream into lines ending in "\n", "\r\n" or a lone
// "\r", reusing one buffer. Unlike bufio.Scanner it survives a line longer
// than its buffer: it skips the rest of that line and reports it as long.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int   // unread data is buf[start:end]
	nl         int   // index in buf of the next '\n' at or after start, or -1
	noNL       int   // buf[start:noNL] holds no '\n' (valid while nl < start)
	crSkip     bool  // a line ended in '\r' at the end of the data: drop a '\n' that follows
	err        error // the first read error; io.EOF at the end
	long       [sampleClip]byte
	longLen    int
}

// next returns the next line without its terminator; it is valid until the
// following call. long reports a line that did not fit in the buffer: line
// then holds only its first bytes. ok is false when the input is used up.
func (lr *lineReader) next() (line []byte, long, ok bool) {
	discarding := false
	empty := 0
	for {
		if lr.crSkip && lr.start < lr.end {
			lr.crSkip = false
			if lr.buf[lr.start] == '\n' {
				lr.start++
			}
		}
		if lr.nl < lr.start {
			from := max(lr.start, lr.noNL)
			if i := bytes.IndexByte(lr.buf[from:lr.end], '\n'); i >= 0 {
				lr.nl = from + i
			} else {
				lr.nl, lr.noNL = -1, lr.end
			}
		}
		lim := lr.end
		if lr.nl >= 0 {
			lim = lr.nl
		}
		eol := -1
		if i := bytes.IndexByte(lr.buf[lr.start:lim], '\r'); i >= 0 {
			eol = lr.start + i
		} else if lr.nl >= 0 {
			eol = lr.nl
		}
		if eol >= 0 {
			line = lr.buf[lr.start:eol]
			lr.start = eol + 1
			if lr.buf[eol] == '\r' {
				if lr.start < lr.end {
					if lr.buf[lr.start] == '\n' {
						lr.start++
					}
				} else {
					lr.crSkip = true
				}
			}
			if discarding {
				return lr.long[:lr.longLen], true, true
			}
			return line, false, true
		}
		if lr.err != nil {
			line = lr.buf[lr.start:lr.end]
			lr.start = lr.end
			switch {
			case discarding:
				return lr.long[:lr.longLen], true, true
			case len(line) > 0:
				return line, false, true
			}
			return nil, false, false
		}
		// No complete line: make room, then read.
		if lr.start > 0 {
			lr.end = copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.noNL = max(lr.noNL-lr.start, 0)
			lr.start = 0
		}
		if lr.end == len(lr.buf) && len(lr.buf) < maxLineLen+1 {
			// Grow for a long line, up to the limit.
			buf := make([]byte, min(2*len(lr.buf), maxLineLen+1))
			lr.end = copy(buf, lr.buf[:lr.end])
			lr.buf = buf
		}
		if lr.end == len(lr.buf) {
			if !discarding {
				discarding = true
				lr.longLen = copy(lr.long[:], lr.buf)
			}
			lr.end, lr.noNL = 0, 0
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		if err != nil {
			lr.err = err
		}
		if n == 0 && err == nil {
			if empty++; empty > 100 {
				lr.err = io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
}
