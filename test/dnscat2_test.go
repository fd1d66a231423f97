package test

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnscat2 is not packaged for Debian. dnscat2Client encodes like its
// client does: every packet (a random packet id, a type, the session id,
// sequence and acknowledgement numbers, data) in hex, in up to two labels
// of up to 63 characters under the tunnel's zone, sent as a TXT, MX or
// CNAME query; when it has nothing to send it polls with an empty
// message.
type dnscat2Client struct {
	rng      *rand.Rand
	zone     string
	session  uint16
	seq, ack uint16
}

const (
	dnscat2SYN = 0x00
	dnscat2MSG = 0x01
	dnscat2ENC = 0x03
	dnscat2Max = 63 // bytes of a packet: two labels of 63 hex characters
)

// query returns the name and type of the query for a packet.
func (c *dnscat2Client) query(typ byte, body []byte) (string, uint16) {
	p := binary.BigEndian.AppendUint16(nil, uint16(c.rng.Uint32()))
	p = append(p, typ)
	p = binary.BigEndian.AppendUint16(p, c.session)
	p = append(p, body...)
	if len(p) > dnscat2Max {
		p = p[:dnscat2Max]
	}
	h := hex.EncodeToString(p)
	var b strings.Builder
	for len(h) > 63 {
		b.WriteString(h[:63] + ".")
		h = h[63:]
	}
	b.WriteString(h + "." + c.zone + ".")
	return b.String(), []uint16{dns.TypeTXT, dns.TypeMX, dns.TypeCNAME}[c.rng.IntN(3)]
}

func (c *dnscat2Client) syn() (string, uint16) {
	return c.query(dnscat2SYN, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, c.seq), 0))
}

func (c *dnscat2Client) enc() (string, uint16) {
	body := []byte{0, 1, 0, 0}
	for i := 0; i < 32; i++ {
		body = append(body, byte(c.rng.Uint32()))
	}
	return c.query(dnscat2ENC, body)
}

func (c *dnscat2Client) msg(data []byte) (string, uint16) {
	body := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, c.seq), c.ack)
	body = append(body, data...)
	c.seq += uint16(len(data))
	return c.query(dnscat2MSG, body)
}

// startDnscat2Server starts a loopback authoritative stub that answers
// like a dnscat2 server: a hex packet in a TXT record, or as the target
// of an MX or CNAME record under the zone.
func startDnscat2Server(t *testing.T, zone string) *upstream {
	rng := rand.New(rand.NewPCG(3, 4))
	return serveUpstream(t, func(q dns.Question, m *dns.Msg) {
		m.Authoritative = true
		p := make([]byte, 9)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		h := hex.EncodeToString(p)
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0, Rrtype: q.Qtype}
		switch q.Qtype {
		case dns.TypeTXT:
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{h}})
		case dns.TypeMX:
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: 10, Mx: h + "." + zone + "."})
		case dns.TypeCNAME:
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr, Target: h + "." + zone + "."})
		}
	})
}

// TestDnscat2Tunnel runs a dnscat2-style client against the resolver
// over the wire, with the tunnel's zone forwarded to a loopback stub
// that answers like a dnscat2 server: the session (SYN, key exchange,
// a file in 54-byte chunks, idle polls) is blocked within 10 queries,
// the rest of it stays blocked, and the audit record names the tunnel
// detector and the registered domain.
func TestDnscat2Tunnel(t *testing.T) {
	const zone = "c2.dnscat.example"
	srv := startDnscat2Server(t, zone)
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.json")
	list := writeFile(t, dir, "list.txt", "evil.test\n")
	r := startCoreDNS(t, shieldCorefile(srv, "", "blocklist malware "+list+"\naudit "+auditPath))

	rng := rand.New(rand.NewPCG(5, 6))
	c := &dnscat2Client{rng: rng, zone: zone, session: uint16(rng.Uint32()), seq: uint16(rng.Uint32())}
	var queries []func() (string, uint16)
	queries = append(queries, c.syn, c.enc, c.enc)
	for i := 0; i < 20; i++ {
		chunk := make([]byte, dnscat2Max-9)
		for j := range chunk {
			chunk[j] = byte(rng.Uint32())
		}
		queries = append(queries, func() (string, uint16) { return c.msg(chunk) })
		if i%3 == 2 {
			queries = append(queries, func() (string, uint16) { return c.msg(nil) })
		}
	}
	for i := 0; i < 10; i++ {
		queries = append(queries, func() (string, uint16) { return c.msg(nil) })
	}

	first, after, afterBlocked := 0, 0, 0
	for i, q := range queries {
		name, qtype := q()
		m := ask(t, "udp", r.udp, name, qtype)
		// Either the stub's answer or a detection block (detectBlocked
		// fails the test on anything else).
		stub := m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 && m.Answer[0].Header().Rrtype == qtype
		blocked := !stub && detectBlocked(t, m)
		if first > 0 {
			after++
			if blocked {
				afterBlocked++
			}
		} else if blocked {
			first = i + 1
		}
	}
	t.Logf("dnscat2-style session: %d queries, first block at query %d, %d of %d later queries blocked", len(queries), first, afterBlocked, after)
	if first == 0 || first > 10 {
		t.Fatalf("first block at query %d, want 1 to 10", first)
	}
	if afterBlocked != after {
		t.Errorf("%d of %d later queries blocked, want all", afterBlocked, after)
	}

	var rec *auditLine
	eventually(t, 5*time.Second, "the tunnel's block record", func() bool {
		for _, l := range readDetections(t, auditPath) {
			if l.Event.Action == "block" {
				l := l
				rec = &l
				return true
			}
		}
		return false
	})
	t.Logf("first block record: %+v", *rec)
	if rec.Rule.Name != "tunnel" || rec.Shield.Domain != "dnscat.example" || rec.Shield.Score < 60 || len(rec.Shield.Reasons) == 0 {
		t.Errorf("block record: detector %q, domain %q, score %d, reasons %v; want tunnel, dnscat.example, >= 60",
			rec.Rule.Name, rec.Shield.Domain, rec.Shield.Score, rec.Shield.Reasons)
	}
}
