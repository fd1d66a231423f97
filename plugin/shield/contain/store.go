// Package contain holds shield's containment state: client quarantines
// (by address or CIDR) and emergency domain blocks, both with an expiry,
// the escalation ladder that quarantines a client after repeated blocks,
// and the state file that lets both survive a restart.
//
// An IPv4 client is one address; an IPv6 client is its /64 (see
// ClientBits6), in the store and in the ladder.
//
// Guard rails: the address space in quarantine is capped, summed over
// every quarantine held (Options.MaxSpace4 and MaxSpace6), and an
// emergency block of a public suffix is refused; both give way to force
// (QuarantineForce, AddBlockForce), and the ladder never forces.
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
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Store methods; wrap-checked with errors.Is.
var (
	// ErrInvalid is a bad client, name or TTL.
	ErrInvalid = errors.New("invalid")
	// ErrFull means the hard bound on quarantines or blocks is reached.
	ErrFull = errors.New("limit reached")
	// ErrNotFound means there is no such quarantine or block.
	ErrNotFound = errors.New("not found")
	// ErrOverCap means a quarantine would take the address space in
	// quarantine over its cap. Force overrides it. Such an error is
	// ErrInvalid too (see NeedsForce).
	ErrOverCap = errors.New("over the quarantine cap")
	// ErrPublicSuffix means an emergency block of a public suffix. Force
	// overrides it. Such an error is ErrInvalid too.
	ErrPublicSuffix = errors.New("public suffix")
)

// NeedsForce reports whether err is a refusal that force overrides
// (ErrOverCap or ErrPublicSuffix).
func NeedsForce(err error) bool {
	return errors.Is(err, ErrOverCap) || errors.Is(err, ErrPublicSuffix)
}

// refusal is a guard rail's error: it is its kind (ErrOverCap or
// ErrPublicSuffix) and ErrInvalid as well, so that a caller that knows
// only ErrInvalid still answers it as a bad request. Check NeedsForce
// first to tell it apart.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.kind.Error() + ": " + r.msg }

func (r *refusal) Is(target error) bool { return target == r.kind || target == ErrInvalid }

func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

const (
	// DefaultMaxEntries bounds quarantines and emergency blocks each. They
	// are added by an operator or by the ladder (itself bounded by the
	// ladder table), so this is a safety net, not a working limit.
	DefaultMaxEntries = 65536

	maxReason   = 512 // bytes of a reason kept
	maxActor    = 128
	maxEvidence = 16 // evidence lines kept per quarantine
)

// Options tunes a Store. Zero values take the defaults.
type Options struct {
	DefaultTTL, MaxTTL           time.Duration // quarantines: 1h and 24h
	BlockDefaultTTL, BlockMaxTTL time.Duration // emergency blocks: 24h and 7 days
	MaxEntries                   int           // per kind; DefaultMaxEntries
	// MaxSpace4 caps the IPv4 addresses in quarantine, and MaxSpace6 the
	// IPv6 /64s, summed over the quarantines held (DefaultMaxSpace4 and
	// DefaultMaxSpace6; ParseSpaceCap reads "/16" or "none").
	MaxSpace4, MaxSpace6 uint64
	Now                  func() time.Time
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
	space  [2]uint64   // address space in quarantine by family, see space
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
	if o.MaxSpace4 == 0 {
		o.MaxSpace4 = DefaultMaxSpace4
	}
	if o.MaxSpace6 == 0 {
		o.MaxSpace6 = DefaultMaxSpace6
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

// Quarantine puts client in quarantine for ttl (0: the default TTL),
// within the address-space cap (ErrOverCap). An IPv6 client longer than
// /64 is held as its /64. An existing quarantine of the same client is
// replaced: its new expiry is the later of the two, and the evidence is
// merged. It returns the quarantine in force.
func (s *Store) Quarantine(client netip.Prefix, d time.Duration, reason, actor string, evidence []string) (Quarantine, error) {
	return s.QuarantineForce(client, d, reason, actor, evidence, false)
}

// QuarantineForce is Quarantine, past the address-space cap if force is
// set. Only an operator's explicit request should set it.
func (s *Store) QuarantineForce(client netip.Prefix, d time.Duration, reason, actor string, evidence []string, force bool) (Quarantine, error) {
	if !client.IsValid() {
		return Quarantine{}, fmt.Errorf("%w client: empty", ErrInvalid)
	}
	d, err := ttl(d, s.opt.DefaultTTL, s.opt.MaxTTL)
	if err != nil {
		return Quarantine{}, err
	}
	now := s.opt.Now()
	q := Quarantine{Client: normPrefix(client), Reason: clip(reason, maxReason), Actor: clip(actor, maxActor), Start: now, Expires: now.Add(d), Evidence: clipEvidence(evidence)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.quar[q.Client]; ok {
		if old.Expires.After(q.Expires) && old.Expires.After(now) {
			q.Expires = old.Expires
		}
		q.Evidence = clipEvidence(append(slices.Clone(old.Evidence), q.Evidence...))
	} else if len(s.quar) >= s.opt.MaxEntries {
		return Quarantine{}, fmt.Errorf("%w: %d quarantines", ErrFull, len(s.quar))
	} else if err := s.checkSpace(q.Client); err != nil && !force {
		return Quarantine{}, err
	}
	s.put(newEntry(q))
	s.publish([]netip.Prefix{q.Client}, false)
	return q, nil
}

// put adds or replaces a quarantine, keeping the space count. The caller
// holds s.mu.
func (s *Store) put(e *Entry) {
	if _, ok := s.quar[e.Client]; !ok {
		s.space[spaceFamily(e.Client)] += space(e.Client)
	}
	s.quar[e.Client] = e
}

// drop removes the quarantine of p, keeping the space count. The caller
// holds s.mu.
func (s *Store) drop(p netip.Prefix) {
	if _, ok := s.quar[p]; ok {
		s.space[spaceFamily(p)] -= space(p)
		delete(s.quar, p)
	}
}

// Release ends client's quarantine early and returns it. An IPv6 client
// longer than /64 is its /64.
func (s *Store) Release(client netip.Prefix) (Quarantine, error) {
	p := normPrefix(client)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.quar[p]
	if !ok {
		return Quarantine{}, fmt.Errorf("%w: no quarantine of %s", ErrNotFound, ClientText(p))
	}
	s.drop(p)
	s.publish([]netip.Prefix{p}, false)
	return e.Quarantine, nil
}

// AddBlock blocks name and the names below it for ttl (0: the default).
// A public suffix is refused (ErrPublicSuffix). A block of the same name
// is replaced, keeping the later expiry.
func (s *Store) AddBlock(name string, d time.Duration, reason, actor string) (Block, error) {
	return s.AddBlockForce(name, d, reason, actor, false)
}

// AddBlockForce is AddBlock, of a public suffix too if force is set.
func (s *Store) AddBlockForce(name string, d time.Duration, reason, actor string, force bool) (Block, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return Block{}, err
	}
	if err := checkBlockName(n); err != nil && !force {
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

func (s *Store) Sweep(now time.Time) (quar []Quarantine, blocks []Block) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []netip.Prefix
	for k, e := range s.quar {
		if !now.Before(e.Expires) {
			quar = append(quar, e.Quarantine)
			keys = append(keys, k)
			s.drop(k)
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
