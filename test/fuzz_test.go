package test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzResolver is one CoreDNS with shield (lists, detection, audit,
// containment) in front of a loopback upstream, started once per fuzz
// process: a server start takes far longer than an input.
var fuzzResolver struct {
	once sync.Once
	r    *resolver
}

// startFuzzResolver starts the resolver the first time it is called.
// The upstream answers whatever it is sent, with or without a question,
// so that only shield and the plugins around it are under test.
func startFuzzResolver(f *testing.F) *resolver {
	fuzzResolver.once.Do(func() {
		h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(r)
			if len(r.Question) > 0 && r.Question[0].Qtype == dns.TypeA {
				rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A " + upstreamA)
				if rr != nil {
					m.Answer = append(m.Answer, rr)
				}
			}
			w.WriteMsg(m)
		})
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			f.Fatal(err)
		}
		udp := &dns.Server{PacketConn: pc, Handler: h}
		tcp := &dns.Server{Listener: ln, Handler: h}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		dir := f.TempDir()
		list := writeFile(f, dir, "c2.txt", "evil.test\n*.wild.test\n")
		corefile := ".:0 {\n bind 127.0.0.1\n shield {\n  blocklist c2 " + list + "\n  audit " + dir + "/audit.json\n }\n cache\n forward . " + pc.LocalAddr().String() + " {\n  max_concurrent 100\n }\n}\n"
		fuzzResolver.r = startCoreDNS(f, corefile)
	})
	return fuzzResolver.r
}

// FuzzServeDNS sends arbitrary DNS messages through the whole server
// (shield, cache, forward) over UDP and TCP. Whatever it is sent, the
// server must not crash, and must still answer a control query
// afterwards: a blocked name with the block, a plain one forwarded.
func FuzzServeDNS(f *testing.F) {
	for _, m := range fuzzSeeds() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r := startFuzzResolver(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil {
			return
		}
		for _, network := range []string{"udp", "tcp"} {
			addr := r.udp
			if network == "tcp" {
				addr = r.tcp
			}
			c := &dns.Client{Net: network, Timeout: 100 * time.Millisecond, UDPSize: 65535}
			// The reply may be anything, or nothing (dropped, refused,
			// too large): only the server's survival is checked.
			c.Exchange(m.Copy(), addr)
		}
		for _, network := range []string{"udp", "tcp"} {
			addr := r.udp
			if network == "tcp" {
				addr = r.tcp
			}
			reply, err := exchange(network, addr, "evil.test.", dns.TypeA, true, 2*time.Second)
			if err != nil || reply.Rcode != dns.RcodeNameError {
				t.Fatalf("control query over %s after %v: %v %v", network, m, reply, err)
			}
			reply, err = exchange(network, addr, "fine.example.", dns.TypeA, true, 2*time.Second)
			if err != nil || !forwarded(reply) {
				t.Fatalf("control query over %s after %v: %v %v", network, m, reply, err)
			}
		}
	})
}

// fuzzSeeds returns the seed messages: the shapes a hostile or broken
// client sends.
func fuzzSeeds() []*dns.Msg {
	q := func(name string, t uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		return m
	}
	var out []*dns.Msg
	out = append(out, q("www.example.com.", dns.TypeA), q("evil.test.", dns.TypeAAAA), q("x.wild.test.", dns.TypeTXT))
	for _, t := range []uint16{dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeNULL, dns.TypeNone, 65535, dns.TypeOPT} {
		out = append(out, q("example.com.", t))
	}
	none := new(dns.Msg) // no question
	none.Id = 7
	out = append(out, none)
	multi := q("a.example.", dns.TypeA) // several questions
	multi.Question = append(multi.Question, dns.Question{Name: "evil.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET}, dns.Question{Name: ".", Qtype: dns.TypeNS, Qclass: dns.ClassCHAOS})
	out = append(out, multi)
	long := ""
	for len(long) < 240 {
		long += "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuv."
	}
	out = append(out, q(long, dns.TypeA), q("\\000\\.\\255."+"evil.test.", dns.TypeA), q(".", dns.TypeA))
	edns := q("opt.example.", dns.TypeA)
	edns.SetEdns0(4096, true)
	o := edns.IsEdns0()
	o.Option = append(o.Option,
		&dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 0, 0, 0)},
		&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"},
		&dns.EDNS0_PADDING{Padding: make([]byte, 64)},
		&dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeBlocked, ExtraText: "forged"},
		&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}})
	out = append(out, edns)
	resp := q("reply.example.", dns.TypeA) // a response sent as a query
	resp.Response, resp.Opcode, resp.Rcode = true, dns.OpcodeNotify, dns.RcodeNameError
	out = append(out, resp)
	upd := q("example.", dns.TypeSOA)
	upd.Opcode = dns.OpcodeUpdate
	upd.Ns = append(upd.Ns, &dns.A{Hdr: dns.RR_Header{Name: "x.example.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)})
	out = append(out, upd)
	return out
}
