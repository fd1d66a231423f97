package blocklist

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"time"
)

// IP lists. A List whose Config has IP set holds addresses and CIDRs
// instead of names: one per line, either alone ("203.0.113.7",
// "198.51.100.0/24") or in hosts form, where the first column is the
// address and the names after it are ignored ("203.0.113.7 c2.example").
// '#' starts a comment. It loads through the same List and Watcher as a
// name list, with the same guards: an update that is empty, mostly
// garbage or shrinks sharply is refused and the last good version stays.

// reasonIPEntry is the sample reason of a line that is not an address.
const reasonIPEntry = "not an address or CIDR"

// ParseIPs reads an IP list from r into b. f is FormatDomains (one
// address or CIDR a line, nothing else), FormatHosts (the address column
// of a hosts line) or FormatAuto (the first column, whichever form the
// line has). Like Parse it streams, counts bad lines in Stats and returns
// an error only when r fails.
func ParseIPs(r io.Reader, f Format, b *IPBuilder) (Stats, error) {
	switch f {
	case FormatAuto, FormatDomains, FormatHosts:
	default:
		return Stats{}, fmt.Errorf("an IP list is plain or hosts, not %s", f)
	}
	p := &parser{}
	lr := &lineReader{r: r, buf: make([]byte, initialBuf), nl: -1}
	for {
		line, long, ok := lr.next()
		if !ok {
			break
		}
		p.st.Lines++
		p.cur = line
		if long {
			p.reject(false, reasonTooLong)
			continue
		}
		line = trimSpace(cutHash(trimBOM(line)))
		p.cur = line
		if len(line) == 0 {
			p.comment()
			continue
		}
		tok, rest := nextField(line)
		if f == FormatDomains && len(rest) > 0 {
			p.reject(false, reasonFields)
			continue
		}
		pfx, ok := ParsePrefix(tok)
		if !ok {
			p.reject(false, reasonIPEntry)
			continue
		}
		b.Add(pfx, ActBlock)
		p.st.Entries++
	}
	if lr.err != io.EOF {
		return p.st, lr.err
	}
	return p.st, nil
}

// loadIPs is the rest of loadFrom for an IP list: parse, check, swap.
func (l *List) loadIPs(br *bufio.Reader, h hash.Hash, f *os.File, want *fileSig, start time.Time) (bool, error) {
	var b IPBuilder
	st, err := ParseIPs(br, l.cfg.Format, &b)
	if err != nil {
		return false, l.readFail(err)
	}
	if want != nil {
		if after, err := f.Stat(); err != nil || sigOf(after) != *want {
			return false, errUnsettled
		}
	}
	version := hex.EncodeToString(h.Sum(nil)[:8])
	prev := l.cur.Load()
	if prev != nil && prev.Version == version {
		return false, nil
	}
	if st.Entries == 0 {
		if st.Invalid == 0 {
			return false, l.fail(FailEmpty, fmt.Errorf("no addresses in %d lines", st.Lines))
		}
		return false, l.fail(FailGarbage, fmt.Errorf("no addresses in %d lines (%d invalid), first: %v", st.Lines, st.Invalid, st.Samples))
	}
	if bad := float64(st.Invalid) / float64(st.Invalid+st.Entries); bad > l.cfg.MaxInvalid {
		return false, l.fail(FailGarbage, fmt.Errorf("%d of %d lines are invalid (%.0f%% > %.0f%%), first: %v",
			st.Invalid, st.Invalid+st.Entries, 100*bad, 100*l.cfg.MaxInvalid, st.Samples))
	}
	set := b.Build()
	if prev != nil && l.cfg.MaxShrink < 1 {
		if floor := float64(prev.Len()) * (1 - l.cfg.MaxShrink); float64(set.Len()) < floor {
			return false, l.fail(FailShrink, fmt.Errorf("update has %d entries, down from %d (more than %.0f%% fewer); keeping version %s",
				set.Len(), prev.Len(), 100*l.cfg.MaxShrink, prev.Version))
		}
	}
	format := l.cfg.Format
	if format == FormatAuto {
		format = FormatHosts
	}
	l.cur.Store(&Snapshot{IPs: set, Version: version, Format: format, Stats: st, Loaded: time.Now(), Elapsed: time.Since(start)})
	return true, nil
}

// Len returns the number of entries of the snapshot: names, addresses
// and prefixes, and the RPZ triggers other than QNAME.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return s.Set.Len() + s.IPs.Len() + s.RPZ.Len()
}
