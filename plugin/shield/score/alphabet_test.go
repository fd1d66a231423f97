package score

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Generated tunnels of every alphabet, and generated benign hash names,
// for the targets of the detection issue that the captured sessions do
// not cover. Each replay runs twice: on a cold engine (no newly_seen
// points, as an engine with less than a day of history gives) and on
// today's engine (newly_seen for every domain the replay has not seen).

var engineModes = []struct {
	name string
	cfg  Config
}{
	{"cold", Config{NoNewlySeen: true}},
	{"newly_seen", Config{}},
}

func replayWith(t testing.TB, cfg Config, step time.Duration) *Replay {
	t.Helper()
	r, err := NewReplay(cfg, step)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dnscat2 encodes like the dnscat2 client: each packet (a random packet
// id, a type, the session id, then sequence and acknowledgement numbers
// and data) in hex, in labels of up to 63 characters (at most two: 63
// bytes a query), under zone, as a TXT, MX or CNAME query.
type dnscat2 struct {
	rng      *rand.Rand
	session  uint16
	seq, ack uint16
	zone     string
}

const (
	dc2SYN = 0x00
	dc2MSG = 0x01
	dc2ENC = 0x03
	// dc2Max is the bytes of a packet that fit in two 63-character hex
	// labels.
	dc2Max = 63
)

var dc2Types = []uint16{16, 15, 5} // TXT, MX, CNAME

func newDnscat2(rng *rand.Rand, zone string) *dnscat2 {
	return &dnscat2{rng: rng, session: uint16(rng.Uint32()), seq: uint16(rng.Uint32()), zone: zone}
}

// packet returns the query for a packet of type typ carrying body.
func (d *dnscat2) packet(typ byte, body []byte) (string, uint16) {
	p := make([]byte, 0, dc2Max)
	p = binary.BigEndian.AppendUint16(p, uint16(d.rng.Uint32()))
	p = append(p, typ)
	p = binary.BigEndian.AppendUint16(p, d.session)
	p = append(p, body...)
	if len(p) > dc2Max {
		p = p[:dc2Max]
	}
	h := hex.EncodeToString(p)
	var b strings.Builder
	for len(h) > 63 {
		b.WriteString(h[:63])
		b.WriteByte('.')
		h = h[63:]
	}
	b.WriteString(h)
	b.WriteByte('.')
	b.WriteString(d.zone)
	b.WriteByte('.')
	return b.String(), dc2Types[d.rng.IntN(len(dc2Types))]
}

// syn opens the session.
func (d *dnscat2) syn() (string, uint16) {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, d.seq)
	body = binary.BigEndian.AppendUint16(body, 0) // options
	return d.packet(dc2SYN, body)
}

// enc is a key-exchange packet: a 32-byte public key part.
func (d *dnscat2) enc() (string, uint16) {
	body := []byte{0, 1, 0, 0}
	for i := 0; i < 32; i++ {
		body = append(body, byte(d.rng.Uint32()))
	}
	return d.packet(dc2ENC, body)
}

// msg sends data (none: an idle poll).
func (d *dnscat2) msg(data []byte) (string, uint16) {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, d.seq)
	body = binary.BigEndian.AppendUint16(body, d.ack)
	body = append(body, data...)
	d.seq += uint16(len(data))
	d.ack += uint16(d.rng.IntN(3))
	return d.packet(dc2MSG, body)
}

// dnscat2Session returns a session: SYN, two key-exchange packets, then
// dataChunks chunks of a file (one idle poll after every third) and
// polls idle polls.
func dnscat2Session(rng *rand.Rand, zone string, dataChunks, polls int) (names []string, types []uint16) {
	d := newDnscat2(rng, zone)
	add := func(n string, t uint16) { names, types = append(names, n), append(types, t) }
	add(d.syn())
	add(d.enc())
	add(d.enc())
	for i := 0; i < dataChunks; i++ {
		chunk := make([]byte, dc2Max-9)
		for j := range chunk {
			chunk[j] = byte(rng.Uint32())
		}
		add(d.msg(chunk))
		if i%3 == 2 {
			add(d.msg(nil))
		}
	}
	for i := 0; i < polls; i++ {
		add(d.msg(nil))
	}
	return names, types
}

// TestDnscat2Style: dnscat2-style hex sessions (TXT, MX and CNAME) are
// blocked within 10 queries, and at least 95% of the rest of the session
// is blocked, on both engines; a session that only polls is blocked too.
func TestDnscat2Style(t *testing.T) {
	for _, m := range engineModes {
		t.Run(m.name, func(t *testing.T) {
			worst := 0
			for s := uint64(0); s < 20; s++ {
				names, types := dnscat2Session(rand.New(rand.NewPCG(s, 9)), fmt.Sprintf("c2-%d.example.net", s), 30, 40)
				r := replayWith(t, m.cfg, replayStep)
				client := netip.AddrFrom4([4]byte{10, 9, 0, byte(s + 1)})
				for i, n := range names {
					res := r.Run(Event{Name: n, Type: types[i], Client: client, Label: "tunnel", Group: "dnscat2"})
					if res.Action == Block && !res.Sticky && s == 0 {
						t.Logf("first block at %d: %s %v %d %v", i+1, n, types[i], res.Score, res.Reasons())
					}
				}
				g := r.Groups()[0]
				if g.FirstBlock > worst {
					worst = g.FirstBlock
				}
				if g.FirstBlock == 0 || g.FirstBlock > 10 || g.AfterRate() < 0.95 {
					t.Errorf("session %d: first block at %d (want 1 to 10), %.1f%% of the rest blocked", s, g.FirstBlock, 100*g.AfterRate())
				}
			}
			t.Logf("20 sessions: first block at query %d at the latest", worst)

			// A session that opens and then only polls (18 hex characters
			// a query).
			names, types := dnscat2Session(rand.New(rand.NewPCG(99, 9)), "idle.example.net", 0, 100)
			r := replayWith(t, m.cfg, replayStep)
			for i, n := range names {
				r.Run(Event{Name: n, Type: types[i], Client: benignClient, Label: "tunnel", Group: "idle"})
			}
			g := r.Groups()[0]
			t.Logf("idle session: first block at query %d, %.1f%% of the rest blocked", g.FirstBlock, 100*g.AfterRate())
			if g.FirstBlock == 0 || g.FirstBlock > 50 {
				t.Errorf("idle session: first block at %d, want 1 to 50", g.FirstBlock)
			}
		})
	}
}

// randAlpha returns n random characters of alpha.
func randAlpha(rng *rand.Rand, alpha string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alpha[rng.IntN(len(alpha))]
	}
	return string(b)
}

const (
	alphaB32 = "abcdefghijklmnopqrstuvwxyz234567"
	alphaB36 = "abcdefghijklmnopqrstuvwxyz0123456789"
	alphaHex = "0123456789abcdef"
	alphaB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// TestSpreadTunnel: a base32 tunnel that sends one query to each of 300
// registered domains (under com, and as tenants of dynamic-DNS providers,
// each its own registered domain) is blocked for its client within 50
// queries by the per-client budget; spread over 300 tenants of one
// provider from 100 clients, it is blocked within 50 by the per-parent
// budget.
func TestSpreadTunnel(t *testing.T) {
	for _, m := range engineModes {
		for _, parent := range []string{"com", "duckdns.org", "ddns.net"} {
			t.Run(m.name+"/"+parent, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(11, 12))
				r := replayWith(t, m.cfg, replayStep)
				client := netip.MustParseAddr("10.8.0.1")
				first := 0
				for i := 1; i <= 300; i++ {
					n := fmt.Sprintf("%s.%s.t%dx%s.%s.", randAlpha(rng, alphaB32, 40), randAlpha(rng, alphaB32, 12), i, randAlpha(rng, "abcdefghijklmnopqrstuvwxyz", 5), parent)
					res := r.Run(Event{Name: n, Type: 1, Client: client, Label: "tunnel", Group: "spread"})
					if res.Action == Block && first == 0 {
						first = i
						t.Logf("first block at %d: %s %d %v", i, n, res.Score, res.Reasons())
					}
				}
				g := r.Groups()[0]
				t.Logf("one client: first block at %d, %.1f%% of the rest blocked", g.FirstBlock, 100*g.AfterRate())
				if g.FirstBlock == 0 || g.FirstBlock > 50 || g.AfterRate() < 0.95 {
					t.Errorf("one client: first block at %d (want 1 to 50), %.1f%% of the rest blocked", g.FirstBlock, 100*g.AfterRate())
				}
				if parent == "com" {
					return
				}
				// Many clients, one provider: only the parent budget sees it.
				r = replayWith(t, m.cfg, replayStep)
				for i := 1; i <= 300; i++ {
					n := fmt.Sprintf("%s.t%dx%s.%s.", randAlpha(rng, alphaB32, 40), i, randAlpha(rng, "abcdefghijklmnopqrstuvwxyz", 5), parent)
					c := netip.AddrFrom4([4]byte{10, 8, 1, byte(i % 100)})
					r.Run(Event{Name: n, Type: 1, Client: c, Label: "tunnel", Group: "tenants"})
				}
				g = r.Groups()[0]
				t.Logf("100 clients: first block at %d, %.1f%% of the rest blocked", g.FirstBlock, 100*g.AfterRate())
				if g.FirstBlock == 0 || g.FirstBlock > 50 || g.AfterRate() < 0.95 {
					t.Errorf("100 clients: first block at %d (want 1 to 50), %.1f%% of the rest blocked", g.FirstBlock, 100*g.AfterRate())
				}
			})
		}
	}
}

// TestSlowTunnel: a tunnel at one query every 5 s is blocked within an
// hour of simulated time, for each alphabet, and stays blocked.
func TestSlowTunnel(t *testing.T) {
	type kind struct {
		name  string
		label func(rng *rand.Rand) string
		qtype uint16
	}
	kinds := []kind{
		{"base32", func(rng *rand.Rand) string { return randAlpha(rng, alphaB32, 52) }, 1},
		{"base64", func(rng *rand.Rand) string { return randAlpha(rng, alphaB64, 40) }, 16},
		{"hex-txt", func(rng *rand.Rand) string { return randAlpha(rng, alphaHex, 40) }, 16},
		{"hex-a", func(rng *rand.Rand) string { return randAlpha(rng, alphaHex, 32) }, 1},
		{"hex2-a", func(rng *rand.Rand) string {
			return randAlpha(rng, alphaHex, 63) + "." + randAlpha(rng, alphaHex, 40)
		}, 1},
		{"base36-a", func(rng *rand.Rand) string { return randAlpha(rng, alphaB36, 24) }, 1},
		{"8bit", func(rng *rand.Rand) string {
			return randAlpha(rng, alphaB32, 20) + `\200` + randAlpha(rng, alphaB32, 10)
		}, 10},
	}
	for _, m := range engineModes {
		for _, k := range kinds {
			t.Run(m.name+"/"+k.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(13, 14))
				r := replayWith(t, m.cfg, 5*time.Second)
				firstAlert, firstBlock := time.Duration(0), time.Duration(0)
				for i := 0; i < 720; i++ {
					res := r.Run(Event{Name: k.label(rng) + ".slow.example.net.", Type: k.qtype, Client: benignClient, Label: "tunnel", Group: k.name})
					if res.Action >= Alert && firstAlert == 0 {
						firstAlert = r.Elapsed()
					}
					if res.Action == Block && firstBlock == 0 {
						firstBlock = r.Elapsed()
						t.Logf("first block after %v (query %d): %d %v", firstBlock, i+1, res.Score, res.Reasons())
					}
				}
				g := r.Groups()[0]
				t.Logf("%s: first alert after %v, first block after %v (0: never); %.1f%% of the rest blocked", k.name, firstAlert, firstBlock, 100*g.AfterRate())
				if firstBlock == 0 || firstBlock > time.Hour {
					t.Errorf("not blocked within an hour")
				}
				if firstBlock != 0 && g.AfterRate() < 0.95 {
					t.Errorf("%.1f%% of the queries after the first block blocked, want >= 95%%", 100*g.AfterRate())
				}
				if firstAlert == 0 {
					t.Errorf("never alerted")
				}
			})
		}
	}
}

// hashName returns a hash-like name under domain, as telemetry and CDNs
// ask them: a UUID, or an MD5 or SHA-1 sized hex label.
func hashName(rng *rand.Rand, domain string) string {
	switch rng.IntN(4) {
	case 0:
		u := randAlpha(rng, alphaHex, 32)
		return fmt.Sprintf("%s-%s-%s-%s-%s.%s.", u[:8], u[8:12], u[12:16], u[16:20], u[20:], domain)
	case 1:
		return randAlpha(rng, alphaHex, 32) + ".cdn." + domain + "."
	case 2:
		return randAlpha(rng, alphaHex, 40) + "." + domain + "."
	default:
		return "d" + randAlpha(rng, alphaB36, 24) + ".telemetry." + domain + "."
	}
}

// popularDomains returns the first n non-exempt registered domains of
// the Umbrella top 100k, in rank order.
func popularDomains(t testing.TB, n int) []string {
	e := mustEngine(t, Config{})
	seen := map[string]bool{}
	var out []string
	for _, name := range lines(t, "benign_umbrella_top100k_fqdn.txt.gz") {
		r := e.Explain(Query{Name: name + ".", Type: 1})
		d := r.Domain()
		if r.Exempt || d == "" || seen[d] {
			continue
		}
		seen[d] = true
		out = append(out, d)
		if len(out) == n {
			break
		}
	}
	return out
}

// TestHashNamesBenign: 50 popular registered domains, each asked by 200
// clients for 1 to 5 hash-like names each (A, AAAA and HTTPS queries, and
// one in ten TXT), interleaved: nothing is blocked and at most 0.1% of
// the names alert.
func TestHashNamesBenign(t *testing.T) {
	domains := popularDomains(t, 50)
	type q struct {
		name   string
		qtype  uint16
		client netip.Addr
	}
	rng := rand.New(rand.NewPCG(15, 16))
	var qs []q
	for di, d := range domains {
		for c := 0; c < 200; c++ {
			client := netip.AddrFrom4([4]byte{10, 20 + byte(di/8), byte(c), byte(di%8 + 1)})
			for k := 1 + rng.IntN(5); k > 0; k-- {
				qt := []uint16{1, 1, 28, 65, 1, 1, 28, 1, 1, 16}[rng.IntN(10)]
				qs = append(qs, q{hashName(rng, d), qt, client})
			}
		}
	}
	rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })
	for _, m := range engineModes {
		t.Run(m.name, func(t *testing.T) {
			r := replayWith(t, m.cfg, replayStep)
			for _, x := range qs {
				res := r.Run(Event{Name: x.name, Type: x.qtype, Client: x.client, Label: "benign"})
				if res.Action >= Alert && !res.Sticky && r.Labels()[0].Alerts < 5 {
					t.Logf("alert: %s %d %v", x.name, res.Score, res.Reasons())
				}
			}
			g := r.Labels()[0]
			t.Logf("%d hash names under %d domains: %d alerts (%.3f%%), %d blocks", g.Queries, len(domains), g.Alerts, 100*g.AlertRate(), g.Blocks)
			if g.Blocks != 0 || g.AlertRate() > 0.001 {
				t.Errorf("%d blocked (%v), %.3f%% alerted; want 0 and <= 0.1%%", g.Blocks, keys(g.Blocked, 10), 100*g.AlertRate())
			}
		})
	}
}
