package feed

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
	"github.com/miekg/dns"
)

// FuzzXFR feeds the answer records of a transfer message (wire format, as
// a primary sends them) through what turns a transfer into a list:
// classifyXFR, the diff or the full zone, the rendering and the RPZ
// parser. Nothing may panic; a zone renders to one line a record (no
// record can smuggle a second rule onto a line of its own), always to the
// same bytes, and reads back with its serial.
func FuzzXFR(f *testing.F) {
	held, err := fullZone("rpz.test.", mustRRs(soaLine("10"), "a.rpz.test. 300 IN CNAME .", "b.rpz.test. 300 IN CNAME .", soaLine("10")))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]string{
		{soaLine("10"), "a.rpz.test. 300 IN CNAME .", soaLine("10")},
		{soaLine("11"), soaLine("10"), "a.rpz.test. 300 IN CNAME .", soaLine("11"), "c.rpz.test. 300 IN CNAME rpz-passthru.", soaLine("11")},
		{soaLine("11"), `t.rpz.test. 300 IN TXT "x\010y.rpz.test. CNAME ."`, "*.w.rpz.test. 300 IN CNAME *.", soaLine("11")},
		{soaLine("12")},
	} {
		m := new(dns.Msg)
		m.Answer = mustRRs(seed...)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		m := new(dns.Msg)
		if m.Unpack(wire) != nil {
			return
		}
		rrs := m.Answer
		kind, _, err := classifyXFR("rpz.test.", rrs)
		if err != nil {
			return
		}
		var z *zone
		switch kind {
		case xfrFull:
			z, err = fullZone("rpz.test.", rrs)
		case xfrIncremental:
			z, err = applyIncremental(held, rrs)
		default:
			return
		}
		if err != nil {
			return
		}
		var text, again bytes.Buffer
		if _, err := z.render(&text); err != nil {
			t.Fatal(err)
		}
		z.render(&again)
		if !bytes.Equal(text.Bytes(), again.Bytes()) {
			t.Fatal("two renderings differ")
		}
		if n := strings.Count(text.String(), "\n"); n != len(z.rrs)+2 {
			t.Fatalf("%d records rendered on %d lines:\n%s", len(z.rrs), n, text.String())
		}
		if back, err := parseZone("rpz.test.", bytes.NewReader(text.Bytes())); err == nil && back.soa.Serial != z.soa.Serial {
			t.Fatalf("read back serial %d, want %d", back.soa.Serial, z.soa.Serial)
		}
		b := blocklist.NewBuilder(16)
		st, err := blocklist.Parse(bytes.NewReader(text.Bytes()), blocklist.FormatRPZ, b)
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries > len(z.rrs) {
			t.Fatalf("%d entries from %d records", st.Entries, len(z.rrs))
		}
	})
}

func mustRRs(lines ...string) []dns.RR {
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			panic(err)
		}
		out = append(out, rr)
	}
	return out
}
