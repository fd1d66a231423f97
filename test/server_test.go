package test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/dnsshield/shield/cmd/coredns/bundle"
	"github.com/miekg/dns"
)

// Addresses the loopback upstream answers with, so a test can tell a
// forwarded answer from a block answer.
const (
	upstreamA    = "192.0.2.53"
	upstreamAAAA = "2001:db8::53"
)

var startMu sync.Mutex

// upstream is a loopback DNS server that answers every A and AAAA query
// with a fixed address, and counts the queries it sees.
type upstream struct {
	addr string
	mu   sync.Mutex
	seen map[string]int
}

func (u *upstream) count(name string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[strings.ToLower(name)]
}

// startUpstream starts the upstream on 127.0.0.1 (UDP and TCP on one port).
func startUpstream(t testing.TB) *upstream {
	t.Helper()
	return serveUpstream(t, func(q dns.Question, m *dns.Msg) {
		switch q.Qtype {
		case dns.TypeA:
			rr, _ := dns.NewRR(fmt.Sprintf("%s 60 IN A %s", q.Name, upstreamA))
			m.Answer = append(m.Answer, rr)
		case dns.TypeAAAA:
			rr, _ := dns.NewRR(fmt.Sprintf("%s 60 IN AAAA %s", q.Name, upstreamAAAA))
			m.Answer = append(m.Answer, rr)
		case dns.TypeTXT:
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"upstream"}})
		}
	})
}

// serveUpstream starts a loopback upstream (UDP and TCP on one port) that
// counts the names it is asked and lets answer fill in each reply.
func serveUpstream(t testing.TB, answer func(q dns.Question, m *dns.Msg)) *upstream {
	t.Helper()
	u := &upstream{seen: map[string]int{}}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		u.mu.Lock()
		u.seen[strings.ToLower(q.Name)]++
		u.mu.Unlock()
		answer(q, m)
		w.WriteMsg(m)
	})
	// UDP and TCP on one port: the port the kernel gives for UDP may be
	// taken for TCP, so try a few.
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	u.addr = pc.LocalAddr().String()
	return u
}

// resolver is a running CoreDNS instance.
type resolver struct {
	inst     *caddy.Instance
	udp, tcp string
}

// startCoreDNS starts CoreDNS from a Corefile and stops it when the test
// ends.
func startCoreDNS(t testing.TB, corefile string) *resolver {
	t.Helper()
	startMu.Lock()
	defer startMu.Unlock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(corefileInput(corefile))
	if err != nil {
		t.Fatalf("starting CoreDNS: %v\nCorefile:\n%s", err, corefile)
	}
	t.Cleanup(func() {
		// What the process does on SIGTERM: run the shutdown hooks (they
		// stop shield's watcher and audit writer), then stop the servers.
		inst.ShutdownCallbacks()
		inst.Stop()
	})
	srvs := inst.Servers()
	if len(srvs) == 0 {
		t.Fatal("no servers")
	}
	return &resolver{inst: inst, udp: srvs[0].LocalAddr().String(), tcp: srvs[0].Addr().String()}
}

// shieldCorefile returns a Corefile with one server on 127.0.0.1 whose
// shield block is body, forwarding to the upstream. extra goes before
// shield (prometheus, ready, ...).
func shieldCorefile(up *upstream, extra, body string) string {
	return fmt.Sprintf(".:0 {\n bind 127.0.0.1\n %s\n shield {\n%s\n }\n forward . %s\n}\n", extra, body, up.addr)
}

type input struct{ body []byte }

func corefileInput(s string) caddy.Input { return input{[]byte(s)} }
func (i input) Body() []byte             { return i.body }
func (i input) Path() string             { return "Corefile" }
func (i input) ServerType() string       { return "dns" }

// ask sends one query over network ("udp" or "tcp") with EDNS0 and returns
// the reply.
func ask(t testing.TB, network, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	r, err := exchange(network, addr, name, qtype, true, 2*time.Second)
	if err != nil {
		t.Fatalf("query %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

func exchange(network, addr, name string, qtype uint16, edns bool, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: network, Timeout: timeout}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// forwarded reports whether r is the upstream's answer.
func forwarded(r *dns.Msg) bool {
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return false
	}
	switch a := r.Answer[0].(type) {
	case *dns.A:
		return a.A.String() == upstreamA
	case *dns.AAAA:
		return a.AAAA.String() == upstreamAAAA
	case *dns.TXT:
		return len(a.Txt) == 1 && a.Txt[0] == "upstream"
	}
	return false
}

// ede returns the Extended DNS Error of r, if any.
func ede(r *dns.Msg) (*dns.EDNS0_EDE, bool) {
	opt := r.IsEdns0()
	if opt == nil {
		return nil, false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e, true
		}
	}
	return nil, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeFile writes a file in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeUDPPort returns a UDP port on host that was free a moment ago.
func freeUDPPort(t testing.TB, host string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
}

// freePort returns a loopback TCP address that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
