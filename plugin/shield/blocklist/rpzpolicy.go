package blocklist

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
)

// RPZ triggers beyond QNAME, and local data.
//
// What shield does with each RPZ trigger and action (the plugin README has
// the table users read):
//   - QNAME: in the list's Set, as always.
//   - rpz-client-ip: RPZPolicy.ClientIP, matched against the client's
//     address before the query is resolved.
//   - rpz-ip: RPZPolicy.IP, matched against every A and AAAA address of
//     the answer.
//   - rpz-nsdname, rpz-nsip: parsed, counted as unsupported and sampled:
//     a forwarder learns a domain's name servers only by extra lookups,
//     which are not built yet.
//   - Actions: NXDOMAIN ("CNAME ."), NODATA ("CNAME *."), PASSTHRU, DROP
//     for every supported trigger; local data (A, AAAA, or a CNAME to a
//     walled-garden name) for QNAME triggers. TCP-ONLY, local data on IP
//     triggers and other local record types are counted as unsupported.

// ActLocal is the action of a QNAME rule that answers with the zone's
// own records: look them up with RPZPolicy.LocalData.
const ActLocal Action = 6

// RPZPolicy is what an RPZ zone holds besides its QNAME rules. It is
// immutable once loaded; nil holds nothing.
type RPZPolicy struct {
	ClientIP *IPSet // rpz-client-ip triggers
	IP       *IPSet // rpz-ip triggers: answer addresses
	local    map[string]*LocalData
}

// LocalData is the answer a local-data rule gives: a CNAME to a
// walled-garden name, or address records. A rule has one or the other.
type LocalData struct {
	CNAME string       // fully qualified target, or ""
	Addrs []netip.Addr // A and AAAA records, in zone order
}

// Len returns the number of rpz-client-ip and rpz-ip triggers.
func (p *RPZPolicy) Len() int {
	if p == nil {
		return 0
	}
	return p.ClientIP.Len() + p.IP.Len()
}

// LocalData returns the local data of the QNAME rule rule ("name" for an
// exact rule, "*.name" for a wildcard), or nil.
func (p *RPZPolicy) LocalData(rule string) *LocalData {
	if p == nil {
		return nil
	}
	return p.local[rule]
}

// rpzBuilder is the Sink of an RPZ block list: the QNAME rules go to the
// Builder, the rest to the policy.
type rpzBuilder struct {
	*Builder
	clientIP, ip IPBuilder
	local        map[string]*LocalData
}

func (r *rpzBuilder) policy() *RPZPolicy {
	return &RPZPolicy{ClientIP: r.clientIP.Build(), IP: r.ip.Build(), local: r.local}
}

// rpzSink is the Sink of a parser that keeps more than QNAME rules.
type rpzSink interface {
	Sink
	addIP(trigger string, p netip.Prefix, act Action)
	addLocal(rule string, cname string, addr netip.Addr)
	localData(rule string) *LocalData
}

func (r *rpzBuilder) localData(rule string) *LocalData { return r.local[rule] }

func (r *rpzBuilder) addIP(trigger string, p netip.Prefix, act Action) {
	if trigger == "rpz-client-ip" {
		r.clientIP.Add(p, act)
	} else {
		r.ip.Add(p, act)
	}
}

func (r *rpzBuilder) addLocal(rule string, cname string, addr netip.Addr) {
	if r.local == nil {
		r.local = map[string]*LocalData{}
	}
	d := r.local[rule]
	if d == nil {
		d = &LocalData{}
		r.local[rule] = d
	}
	if cname != "" {
		d.CNAME = cname
	} else {
		d.Addrs = append(d.Addrs, addr)
	}
}

// Sample reasons of the RPZ rules shield does not act on.
const (
	reasonNSTrigger = "RPZ rpz-nsdname/rpz-nsip trigger: name-server lookups are not built"
	reasonIPTrigger = "bad RPZ IP trigger"
	reasonIPLocal   = "RPZ local data on an IP trigger"
	reasonLocalType = "RPZ local data other than A, AAAA or CNAME"
	reasonLocalMix  = "RPZ local data mixing a CNAME with other records"
)

// rpzTrigger splits a relative owner name into its trigger label (the
// last label, when it is one of rpzTriggers) and the rest.
func rpzTrigger(name []byte) (trigger string, rest []byte) {
	i := bytes.LastIndexByte(name, '.')
	label := name[i+1:]
	if !hasPrefixFold(label, "rpz-") {
		return "", name
	}
	for _, t := range rpzTriggers {
		if equalFold(label, t) {
			if i < 0 {
				return t, nil
			}
			return t, name[:i]
		}
	}
	return "", name
}

// parseRPZPrefix parses the owner of an IP trigger without its trigger
// label: "32.1.2.0.192" is 192.0.2.1/32, "48.zz.db8.2001" is 2001:db8::/48
// (the prefix length first, then the address backwards; "zz" stands for
// the longest run of zero groups).
func parseRPZPrefix(b []byte) (netip.Prefix, bool) {
	labels := strings.Split(strings.ToLower(string(b)), ".")
	if len(labels) < 2 {
		return netip.Prefix{}, false
	}
	bits, err := strconv.Atoi(labels[0])
	if err != nil {
		return netip.Prefix{}, false
	}
	parts := labels[1:]
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	var text string
	if len(parts) == 4 && !strings.Contains(strings.Join(parts, ""), "zz") && bits <= 32 {
		text = strings.Join(parts, ".")
	} else {
		for i, p := range parts {
			if p == "zz" {
				parts[i] = ""
			}
		}
		text = strings.Join(parts, ":")
		if strings.HasPrefix(text, ":") {
			text = ":" + text
		}
		if strings.HasSuffix(text, ":") {
			text += ":"
		}
	}
	a, err := netip.ParseAddr(text)
	if err != nil || bits < 1 || bits > a.BitLen() {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		return netip.Prefix{}, false // host bits set: a typo, not a prefix
	}
	return p, true
}

// rpzAction returns the action of a CNAME target that is one of RPZ's
// special targets, and whether it is one.
func rpzAction(target []byte) (Action, bool) {
	switch {
	case equalFold(target, "."):
		return ActNXDomain, true
	case equalFold(target, "*."):
		return ActNoData, true
	case equalFold(target, "rpz-passthru."):
		return ActAllow, true
	case equalFold(target, "rpz-drop."):
		return ActDrop, true
	}
	return ActNone, false
}

// rpzIPRule handles a record whose owner carries an IP trigger.
func (p *parser) rpzIPRule(rs rpzSink, trigger string, rest, typ, rdata []byte) {
	if trigger == "rpz-nsip" || trigger == "rpz-nsdname" {
		p.reject(true, reasonNSTrigger)
		return
	}
	pfx, ok := parseRPZPrefix(rest)
	if !ok {
		p.reject(false, reasonIPTrigger)
		return
	}
	if !equalFold(typ, "cname") {
		p.reject(true, reasonIPLocal)
		return
	}
	target, extra := nextZoneField(rdata)
	if len(target) == 0 || len(extra) > 0 {
		p.reject(false, reasonNoTarget)
		return
	}
	act, special := rpzAction(target)
	switch {
	case equalFold(target, "rpz-tcp-only."):
		p.reject(true, reasonTCPOnly)
		return
	case !special:
		p.reject(true, reasonIPLocal)
		return
	}
	rs.addIP(trigger, pfx, act)
	p.st.Entries++
}

// rpzLocal handles a QNAME rule with local data: an A or AAAA record, or
// a CNAME to a name that is not one of RPZ's special targets.
func (p *parser) rpzLocal(rs rpzSink, name, typ, rdata []byte) {
	val, extra := nextZoneField(rdata)
	if len(val) == 0 || len(extra) > 0 {
		p.reject(false, reasonNoTarget)
		return
	}
	rule := name
	below := bytes.HasPrefix(name, []byte("*."))
	if below {
		rule = name[2:]
	}
	norm, ok := Normalize(rule)
	if !ok {
		p.reject(false, reasonName)
		return
	}
	key := string(norm)
	if below {
		key = "*." + key
	}
	var cname string
	var addr netip.Addr
	switch {
	case equalFold(typ, "cname"):
		t := strings.ToLower(string(val))
		if !strings.HasSuffix(t, ".") {
			if len(p.origin) > 0 {
				t += "." + string(p.origin)
			}
			t += "."
		}
		cname = t
	case equalFold(typ, "a"), equalFold(typ, "aaaa"):
		a, err := netip.ParseAddr(string(val))
		if err != nil || a.Zone() != "" || a.Is4() != equalFold(typ, "a") {
			p.reject(false, reasonTarget)
			return
		}
		addr = a
	default:
		p.reject(true, reasonLocalType)
		return
	}
	if d := rs.localData(key); d != nil && (cname != "" && len(d.Addrs) > 0 || cname == "" && d.CNAME != "") {
		p.reject(false, reasonLocalMix)
		return
	}
	rs.addLocal(key, cname, addr)
	if below {
		p.sink.Add(norm, ActNone, ActLocal)
	} else {
		p.sink.Add(norm, ActLocal, ActNone)
	}
	p.st.Entries++
}
