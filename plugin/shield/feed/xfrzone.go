package feed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// zone is a copy of a policy zone as held by a secondary: its SOA and
// every other record, keyed by rrKey so that an IXFR can delete them. It is
// never changed once built; an IXFR builds a new one.
type zone struct {
	origin string // fully qualified, lower case
	soa    *dns.SOA
	rrs    map[string]dns.RR
}

// rrKey identifies a record within a zone regardless of its TTL and of the
// case of its names, as an IXFR deletion names it.
func rrKey(rr dns.RR) string {
	c := dns.Copy(rr)
	c.Header().Ttl = 0
	return strings.ToLower(c.String())
}

// serialNewer reports whether serial a is newer than b in RFC 1982 serial
// number arithmetic. Two serials 2^31 apart are not comparable and a is
// taken as not newer.
func serialNewer(a, b uint32) bool {
	d := a - b
	return d != 0 && d < 1<<31
}

// Kinds of transfer answer, as classifyXFR tells them apart.
const (
	xfrUpToDate    = iota // a single SOA: the primary has nothing newer
	xfrFull               // SOA, the records, SOA: the whole zone (AXFR, or IXFR answered in full)
	xfrIncremental        // SOA, then difference sequences, SOA
)

// errPartial is a transfer whose records do not form a complete answer.
var errPartial = errors.New("incomplete transfer")

// classifyXFR tells what kind of answer the records of a transfer (every
// answer section, in order) are, after checking that they start and end
// with the same SOA.
func classifyXFR(origin string, rrs []dns.RR) (kind int, soa *dns.SOA, err error) {
	if len(rrs) == 0 {
		return 0, nil, fmt.Errorf("%w: no records", errPartial)
	}
	soa, ok := rrs[0].(*dns.SOA)
	if !ok || !strings.EqualFold(soa.Hdr.Name, origin) {
		return 0, nil, fmt.Errorf("%w: the first record is not the SOA of %s", errPartial, origin)
	}
	if len(rrs) == 1 {
		return xfrUpToDate, soa, nil
	}
	last, ok := rrs[len(rrs)-1].(*dns.SOA)
	if !ok || last.Serial != soa.Serial {
		return 0, nil, fmt.Errorf("%w: the last record is not the SOA with serial %d", errPartial, soa.Serial)
	}
	if _, ok := rrs[1].(*dns.SOA); ok && len(rrs) > 2 {
		return xfrIncremental, soa, nil
	}
	return xfrFull, soa, nil
}

// fullZone builds the zone of a full answer (rrs as classifyXFR saw them).
// Records outside the zone are refused.
func fullZone(origin string, rrs []dns.RR) (*zone, error) {
	z := &zone{origin: origin, soa: rrs[0].(*dns.SOA), rrs: make(map[string]dns.RR, len(rrs))}
	for _, rr := range rrs[1 : len(rrs)-1] {
		if err := z.check(rr); err != nil {
			return nil, err
		}
		if _, ok := rr.(*dns.SOA); ok {
			return nil, fmt.Errorf("%w: a second SOA inside a full transfer", errPartial)
		}
		z.rrs[rrKey(rr)] = rr
	}
	return z, nil
}

// check refuses a record that is not in the zone.
func (z *zone) check(rr dns.RR) error {
	if !dns.IsSubDomain(z.origin, rr.Header().Name) {
		return fmt.Errorf("record %s is outside the zone %s", rr.Header().Name, z.origin)
	}
	return nil
}

// applyIncremental returns held with the difference sequences of an
// incremental answer applied (RFC 1995): each sequence is the old SOA, the
// records deleted, the new SOA, the records added. The first old SOA must
// be held's, each sequence must follow the last, and every deleted record
// must be in the zone; otherwise the diff does not apply to what is held
// and the caller asks for the whole zone. held is not changed.
func applyIncremental(held *zone, rrs []dns.RR) (*zone, error) {
	z := &zone{origin: held.origin, soa: held.soa, rrs: make(map[string]dns.RR, len(held.rrs))}
	for k, rr := range held.rrs {
		z.rrs[k] = rr
	}
	body := rrs[1 : len(rrs)-1]
	for i := 0; i < len(body); {
		from, ok := body[i].(*dns.SOA)
		if !ok || from.Serial != z.soa.Serial {
			return nil, fmt.Errorf("the difference does not start at serial %d", z.soa.Serial)
		}
		i++
		for ; i < len(body); i++ {
			if _, ok := body[i].(*dns.SOA); ok {
				break
			}
			k := rrKey(body[i])
			if _, ok := z.rrs[k]; !ok {
				return nil, fmt.Errorf("the difference deletes a record the zone does not hold")
			}
			delete(z.rrs, k)
		}
		if i == len(body) {
			return nil, fmt.Errorf("%w: a difference sequence without its new SOA", errPartial)
		}
		to := body[i].(*dns.SOA)
		if !serialNewer(to.Serial, from.Serial) {
			return nil, fmt.Errorf("a difference from serial %d to %d goes backwards", from.Serial, to.Serial)
		}
		z.soa = to
		i++
		for ; i < len(body); i++ {
			if _, ok := body[i].(*dns.SOA); ok {
				break
			}
			if err := z.check(body[i]); err != nil {
				return nil, err
			}
			z.rrs[rrKey(body[i])] = body[i]
		}
	}
	last := rrs[len(rrs)-1].(*dns.SOA)
	if z.soa.Serial != last.Serial {
		return nil, fmt.Errorf("%w: the differences end at serial %d, not %d", errPartial, z.soa.Serial, last.Serial)
	}
	z.soa = last
	return z, nil
}

// render writes the zone as RPZ zone-file text: an $ORIGIN line, the SOA,
// and the other records in a fixed order, so that the same zone always
// renders to the same bytes (the list's version is their hash).
func (z *zone) render(w io.Writer) (int64, error) {
	lines := make([]string, 0, len(z.rrs))
	for _, rr := range z.rrs {
		lines = append(lines, rr.String())
	}
	slices.Sort(lines)
	var b bytes.Buffer
	b.WriteString("$ORIGIN " + z.origin + "\n")
	b.WriteString(z.soa.String() + "\n")
	var n int64
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
		if b.Len() > 64<<10 {
			m, err := w.Write(b.Bytes())
			n += int64(m)
			if err != nil {
				return n, err
			}
			b.Reset()
		}
	}
	m, err := w.Write(b.Bytes())
	return n + int64(m), err
}

// parseZone reads back the text render wrote (the disk cache), so that an
// IXFR can follow a restart.
func parseZone(origin string, r io.Reader) (*zone, error) {
	zp := dns.NewZoneParser(r, origin, "")
	z := &zone{origin: origin, rrs: map[string]dns.RR{}}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			if z.soa != nil {
				return nil, errors.New("two SOA records")
			}
			z.soa = soa
			continue
		}
		if err := z.check(rr); err != nil {
			return nil, err
		}
		z.rrs[rrKey(rr)] = rr
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	if z.soa == nil || !strings.EqualFold(z.soa.Hdr.Name, origin) {
		return nil, errors.New("no SOA at the zone apex")
	}
	return z, nil
}
