// Package contain holds shield's containment state: client quarantines
// (by address or CIDR) and emergency domain blocks, both with an expiry,
// the escalation ladder that quarantines a client after repeated blocks,
// and the state file that lets both survive a restart.
//
// The query path reads an immutable snapshot through an atomic pointer, so
// a lookup takes no lock and, when nothing is quarantined or blocked, costs
// one pointer load. Every change (add, release, expiry) builds a new
// snapshot under the store's mutex, copying only the shard of the
// quarantines it touches (or the block map), so a change costs a small
// share of the table however full it is.
//
// The package does no logging and has no metrics: it returns what changed
// and the CoreDNS glue in package shield writes the audit records, the log
// lines and the metrics.
package contain

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnsshield/shield/plugin/shield/blocklist"
)

// Errors returned by Store methods; wrap-checked with errors.Is.
var (
	// ErrInvalid is a bad client, name or TTL.
	ErrInvalid = errors.New("invalid")
	// ErrFull means the hard bound on quarantines or blocks is reached.
	ErrFull = errors.New("limit reached")
	// ErrNotFound means there is no such quarantine or block.
	ErrNotFound = errors.New("not found")
)

// Bounds. A quarantine broader than these prefix lengths would sink a
// whole network by accident; an operator who means that can add several.
const (
	MinBits4 = 8  // at most 2^24 IPv4 addresses in one quarantine
	MinBits6 = 32 // an IPv6 /32 is a whole provider allocation

	// DefaultMaxEntries bounds quarantines and emergency blocks each. They
	// are added by an operator or by the ladder (itself bounded by the
	// ladder table), so this is a safety net, not a working limit.
	DefaultMaxEntries = 65536

	maxReason   = 512 // bytes of a reason kept
	maxActor    = 128
	maxEvidence = 16 // evidence lines kept per quarantine
)

// Quarantine is one quarantined client: an address (a /32 or /128) or a
// network. Its JSON form is the state file's.
type Quarantine struct {
	Client   netip.Prefix `json:"client"`
	Reason   string       `json:"reason,omitempty"`
	Actor    string       `json:"actor"`
	Start    time.Time    `json:"start"`
	Expires  time.Time    `json:"expires"`
	Evidence []string     `json:"evidence,omitempty"`
}

// Block is one emergency domain block: the name and every name below it.
// Name is normalised (lower case, no trailing dot).
type Block struct {
	Name    string    `json:"name"`
	Reason  string    `json:"reason,omitempty"`
	Actor   string    `json:"actor"`
	Start   time.Time `json:"start"`
	Expires time.Time `json:"expires"`
}

// Entry is a quarantine as the query path sees it, with the text of the
// answer's Extended DNS Error made once.
type Entry struct {
	Quarantine
	ClientText string // Client as text, for audit records
	EDEText    string // "client quarantined: REASON"
}

// BlockEntry is an emergency block as the query path sees it.
type BlockEntry struct {
	Block
	EDEText string // "emergency block: REASON"
}

// quarShards is how many maps the quarantines of a snapshot are spread
// over. A change copies only the shards it touches, so filling the table
// (escalations do that on the query path, and spoofed sources can drive
// them) costs about n*n/2/quarShards copied entries instead of n*n/2.
const quarShards = 256

// snapshot is the immutable state read by the query path. Snapshots share
// the shards and the block map a change does not touch.
type snapshot struct {
	quar   [quarShards]map[netip.Prefix]*Entry // by quarShard
	nquar  int
	bits4  []int // distinct prefix lengths in quar, longest first
	bits6  []int
	blocks map[string]*BlockEntry
}

// shardKey keys the shard hash with per-process random values, so that
// sources cannot be picked to crowd one shard.
var shardKey = func() [2]uint64 {
	seed := maphash.MakeSeed()
	return [2]uint64{maphash.String(seed, "hi"), maphash.String(seed, "lo")}
}()

// quarShard returns the shard of a quarantine key: a keyed multiply-xor
// mix of the address and the prefix length (cheap, and it allocates
// nothing on the query path).
func quarShard(p netip.Prefix) int {
	a := p.Addr().As16()
	h := (binary.BigEndian.Uint64(a[:8]) ^ shardKey[0]) * 0x9e3779b97f4a7c15
	h ^= binary.BigEndian.Uint64(a[8:]) ^ shardKey[1] ^ uint64(p.Bits())
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 31
	return int(h % quarShards)
}

// Options tunes a Store. Zero values take the defaults.
type Options struct {
	DefaultTTL, MaxTTL           time.Duration // quarantines: 1h and 24h
	BlockDefaultTTL, BlockMaxTTL time.Duration // emergency blocks: 24h and 7 days
	MaxEntries                   int           // per kind; DefaultMaxEntries
	Now                          func() time.Time
}

// Defaults for Options.
const (
	DefaultTTL      = time.Hour
	DefaultMaxTTL   = 24 * time.Hour
	DefaultBlockTTL = 24 * time.Hour
	DefaultBlockMax = 7 * 24 * time.Hour
)

// Store holds the quarantines and emergency blocks. Its methods are safe
// for concurrent use.
type Store struct {
	opt  Options
	snap atomic.Pointer[snapshot] // nil when there is nothing at all

	mu     sync.Mutex // serialises changes; guards the fields below
	quar   map[netip.Prefix]*Entry
	blocks map[string]*BlockEntry
	cur    *snapshot   // the last snapshot built, never nil
	bits   [2][129]int // quarantines by family (0: IPv4) and prefix length
	copied int         // entries copied into snapshots, for the tests

	changed chan struct{} // cap 1: signalled after every change
}

// NewStore returns an empty Store.
func NewStore(o Options) *Store {
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = DefaultTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.BlockDefaultTTL <= 0 {
		o.BlockDefaultTTL = DefaultBlockTTL
	}
	if o.BlockMaxTTL <= 0 {
		o.BlockMaxTTL = DefaultBlockMax
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{
		opt:     o,
		quar:    map[netip.Prefix]*Entry{},
		blocks:  map[string]*BlockEntry{},
		cur:     &snapshot{},
		changed: make(chan struct{}, 1),
	}
}

// Options returns the store's options, defaults filled in.
func (s *Store) Options() Options { return s.opt }

// Changed returns a channel that receives after a change; the state file
// writer waits on it. Several changes may be reported once.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// ParseClient parses an address or a CIDR as a quarantine key: the
// address unmapped and without zone becomes a /32 or /128, a prefix is
// masked. Prefixes broader than MinBits4 or MinBits6 are refused.
func ParseClient(v string) (netip.Prefix, error) {
	v = strings.TrimSpace(v)
	var p netip.Prefix
	if strings.IndexByte(v, '/') >= 0 {
		var err error
		p, err = netip.ParsePrefix(v)
		if err != nil {
			return p, fmt.Errorf("%w client %q: not an address or CIDR", ErrInvalid, v)
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, fmt.Errorf("%w client %q: an IPv4-mapped prefix must be /96 or longer", ErrInvalid, v)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
	} else {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%w client %q: not an address or CIDR", ErrInvalid, v)
		}
		a = a.Unmap()
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if min := MinBits4; p.Addr().Is6() && p.Bits() < MinBits6 || p.Addr().Is4() && p.Bits() < min {
		return netip.Prefix{}, fmt.Errorf("%w client %q: broader than /%d (IPv4) or /%d (IPv6)", ErrInvalid, v, MinBits4, MinBits6)
	}
	return p, nil
}

// ClientText returns p as an operator writes it: a bare address for a
// single host, else the CIDR.
func ClientText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// NormalizeName returns the normalised form of a domain name for an
// emergency block, or ErrInvalid.
func NormalizeName(v string) (string, error) {
	b, ok := blocklist.Normalize([]byte(strings.TrimSpace(v)))
	if !ok {
		return "", fmt.Errorf("%w name %q: not a domain name", ErrInvalid, v)
	}
	return string(b), nil
}

// ttl resolves a requested TTL: 0 is the default, negative or above max
// is an error.
func ttl(d, def, max time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return def, nil
	case d < 0:
		return 0, fmt.Errorf("%w ttl %s: must be positive", ErrInvalid, d)
	case d < time.Second:
		return 0, fmt.Errorf("%w ttl %s: at least 1s", ErrInvalid, d)
	case d > max:
		return 0, fmt.Errorf("%w ttl %s: above the maximum %s", ErrInvalid, d, max)
	}
	return d, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func newEntry(q Quarantine) *Entry {
	e := &Entry{Quarantine: q, ClientText: ClientText(q.Client)}
	e.EDEText = "client " + e.ClientText + " quarantined"
	if q.Reason != "" {
		e.EDEText += ": " + q.Reason
	}
	return e
}

func newBlockEntry(b Block) *BlockEntry {
	e := &BlockEntry{Block: b, EDEText: "emergency block " + b.Name}
	if b.Reason != "" {
		e.EDEText += ": " + b.Reason
	}
	return e
}

// Quarantine puts client in quarantine for ttl (0: the default TTL). An
// existing quarantine of the same client is replaced: its new expiry is
// the later of the two, and the evidence is merged. It returns the
// quarantine in force.
func (s *Store) Quarantine(client netip.Prefix, d time.Duration, reason, actor string, evidence []string) (Quarantine, error) {
	if !client.IsValid() {
		return Quarantine{}, fmt.Errorf("%w client: empty", ErrInvalid)
	}
	d, err := ttl(d, s.opt.DefaultTTL, s.opt.MaxTTL)
	if err != nil {
		return Quarantine{}, err
	}
	now := s.opt.Now()
	q := Quarantine{Client: client.Masked(), Reason: clip(reason, maxReason), Actor: clip(actor, maxActor), Start: now, Expires: now.Add(d), Evidence: clipEvidence(evidence)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.quar[q.Client]; ok {
		if old.Expires.After(q.Expires) && old.Expires.After(now) {
			q.Expires = old.Expires
		}
		q.Evidence = clipEvidence(append(slices.Clone(old.Evidence), q.Evidence...))
	} else if len(s.quar) >= s.opt.MaxEntries {
		return Quarantine{}, fmt.Errorf("%w: %d quarantines", ErrFull, len(s.quar))
	}
	s.quar[q.Client] = newEntry(q)
	s.publish([]netip.Prefix{q.Client}, false)
	return q, nil
}

func clipEvidence(ev []string) []string {
	if len(ev) > maxEvidence {
		ev = ev[len(ev)-maxEvidence:]
	}
	if len(ev) == 0 {
		return nil
	}
	out := make([]string, len(ev))
	for i, v := range ev {
		out[i] = clip(v, maxReason)
	}
	return out
}

// Release ends client's quarantine early and returns it.
func (s *Store) Release(client netip.Prefix) (Quarantine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.quar[client.Masked()]
	if !ok {
		return Quarantine{}, fmt.Errorf("%w: no quarantine of %s", ErrNotFound, ClientText(client))
	}
	delete(s.quar, client.Masked())
	s.publish([]netip.Prefix{client.Masked()}, false)
	return e.Quarantine, nil
}

// AddBlock blocks name and the names below it for ttl (0: the default).
// A block of the same name is replaced, keeping the later expiry.
func (s *Store) AddBlock(name string, d time.Duration, reason, actor string) (Block, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Block{}, err
	}
	d, err = ttl(d, s.opt.BlockDefaultTTL, s.opt.BlockMaxTTL)
	if err != nil {
		return Block{}, err
	}
	now := s.opt.Now()
	b := Block{Name: n, Reason: clip(reason, maxReason), Actor: clip(actor, maxActor), Start: now, Expires: now.Add(d)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.blocks[n]; ok {
		if old.Expires.After(b.Expires) {
			b.Expires = old.Expires
		}
	} else if len(s.blocks) >= s.opt.MaxEntries {
		return Block{}, fmt.Errorf("%w: %d emergency blocks", ErrFull, len(s.blocks))
	}
	s.blocks[n] = newBlockEntry(b)
	s.publish(nil, true)
	return b, nil
}

// RemoveBlock removes the emergency block of name and returns it.
func (s *Store) RemoveBlock(name string) (Block, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Block{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blocks[n]
	if !ok {
		return Block{}, fmt.Errorf("%w: no emergency block of %s", ErrNotFound, n)
	}
	delete(s.blocks, n)
	s.publish(nil, true)
	return e.Block, nil
}

// Sweep removes what has expired at now and returns it.
func (s *Store) Sweep(now time.Time) (quar []Quarantine, blocks []Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []netip.Prefix
	for k, e := range s.quar {
		if !now.Before(e.Expires) {
			quar = append(quar, e.Quarantine)
			keys = append(keys, k)
			delete(s.quar, k)
		}
	}
	for k, e := range s.blocks {
		if !now.Before(e.Expires) {
			blocks = append(blocks, e.Block)
			delete(s.blocks, k)
		}
	}
	if len(quar)+len(blocks) > 0 {
		s.publish(keys, len(blocks) > 0)
	}
	return quar, blocks
}

// Quarantines returns the quarantines, soonest expiry first.
func (s *Store) Quarantines() []Quarantine {
	s.mu.Lock()
	out := make([]Quarantine, 0, len(s.quar))
	for _, e := range s.quar {
		out = append(out, e.Quarantine)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Quarantine) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.Client.String(), b.Client.String())
	})
	return out
}

// Blocks returns the emergency blocks, soonest expiry first.
func (s *Store) Blocks() []Block {
	s.mu.Lock()
	out := make([]Block, 0, len(s.blocks))
	for _, e := range s.blocks {
		out = append(out, e.Block)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Block) int {
		if c := a.Expires.Compare(b.Expires); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Counts returns how many quarantines and emergency blocks are held
// (expired ones the sweep has not removed yet included).
func (s *Store) Counts() (quarantines, blocks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.quar), len(s.blocks)
}

// publish makes a snapshot with the changes to the quarantines of keys
// (added, replaced or removed in s.quar) and, if blocks is set, to the
// emergency blocks, and signals the change. Only the shards of keys are
// copied. The caller holds s.mu.
func (s *Store) publish(keys []netip.Prefix, blocks bool) {
	sn := new(snapshot)
	*sn = *s.cur
	var copied [quarShards]bool
	for _, k := range keys {
		i := quarShard(k)
		if !copied[i] {
			m := make(map[netip.Prefix]*Entry, len(sn.quar[i])+1)
			maps.Copy(m, sn.quar[i])
			s.copied += len(sn.quar[i])
			sn.quar[i], copied[i] = m, true
		}
		fam := 0
		if k.Addr().Is6() {
			fam = 1
		}
		_, had := sn.quar[i][k]
		if e, ok := s.quar[k]; ok {
			sn.quar[i][k] = e
			if !had {
				s.bits[fam][k.Bits()]++
			}
		} else if had {
			delete(sn.quar[i], k)
			s.bits[fam][k.Bits()]--
		}
	}
	sn.nquar = len(s.quar)
	if len(keys) > 0 {
		sn.bits4, sn.bits6 = nil, nil
		for b := 128; b >= 0; b-- {
			if s.bits[0][b] > 0 {
				sn.bits4 = append(sn.bits4, b)
			}
			if s.bits[1][b] > 0 {
				sn.bits6 = append(sn.bits6, b)
			}
		}
	}
	if blocks {
		sn.blocks = maps.Clone(s.blocks)
		s.copied += len(s.blocks)
	}
	s.cur = sn
	if sn.nquar == 0 && len(sn.blocks) == 0 {
		s.snap.Store(nil)
	} else {
		s.snap.Store(sn)
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Active reports whether anything is quarantined or blocked; when it is
// false the query path has nothing to do.
func (s *Store) Active() bool { return s.snap.Load() != nil }

// Lookup returns the most specific quarantine covering addr that has not
// expired at now, or nil. It takes no lock and does not allocate. addr
// should be unmapped.
func (s *Store) Lookup(addr netip.Addr, now time.Time) *Entry {
	sn := s.snap.Load()
	if sn == nil || sn.nquar == 0 {
		return nil
	}
	bits := sn.bits6
	if addr.Is4() {
		bits = sn.bits4
	}
	for _, b := range bits {
		p, err := addr.Prefix(b)
		if err != nil {
			continue
		}
		if e := sn.quar[quarShard(p)][p]; e != nil && now.Before(e.Expires) {
			return e
		}
	}
	return nil
}

// HasQuarantines reports whether any quarantine is held; the query path
// calls it before reading the clock.
func (s *Store) HasQuarantines() bool {
	sn := s.snap.Load()
	return sn != nil && sn.nquar > 0
}

// HasBlocks reports whether any emergency block is held.
func (s *Store) HasBlocks() bool {
	sn := s.snap.Load()
	return sn != nil && len(sn.blocks) > 0
}

// LookupBlock returns the emergency block covering the normalised name
// (as made by blocklist.NormalizeQuery), the most specific first, if it
// has not expired at now. It walks the name label by label, takes no lock
// and does not allocate.
func (s *Store) LookupBlock(name []byte, now time.Time) *BlockEntry {
	sn := s.snap.Load()
	if sn == nil || len(sn.blocks) == 0 {
		return nil
	}
	for i := 0; i < len(name); {
		if e := sn.blocks[string(name[i:])]; e != nil && now.Before(e.Expires) {
			return e
		}
		for i < len(name) && name[i] != '.' {
			i++
		}
		i++
	}
	return nil
}
