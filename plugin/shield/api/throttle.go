package api

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// Defaults of ThrottleOptions: five failures at once, then one every 12
// seconds. A source with 1,000 wrong tokens needs more than three hours
// for them, while an operator who mistypes a few times is not held up.
const (
	DefaultThrottleBurst  = 5
	DefaultThrottleRefill = 12 * time.Second
	DefaultThrottleSlots  = 4096
)

// throttleWays is the associativity of the throttle's table.
const throttleWays = 4

// ThrottleOptions tunes an AuthThrottle. Zero values take the defaults.
type ThrottleOptions struct {
	Burst  int           // failures allowed at once
	Refill time.Duration // one more failure allowed per Refill
	Slots  int           // sources tracked (rounded up to a multiple of 4)
	Now    func() time.Time
}

// AuthThrottle limits failed authentications per source address, an
// IPv6 source by its /64. Each source has an allowance of Burst failures
// that refills at one per Refill (a generic cell rate algorithm: one
// timestamp per source). A source whose allowance is spent is refused,
// for every request, until it refills. Its table has a fixed size,
// set-associative with a per-process random hash: when a set is full the
// source that owes least is replaced, so a flood of sources costs no
// memory and cannot pick whom it evicts. It is safe for concurrent use.
type AuthThrottle struct {
	burst  int64 // in nanoseconds of refill: (Burst-1)*Refill
	refill int64
	now    func() time.Time
	seed   maphash.Seed

	mu   sync.Mutex // guards sets
	sets [][throttleWays]throttleSlot
}

type throttleSlot struct {
	key  [16]byte // the source's address, IPv4 in IPv6 form, IPv6 masked to /64
	used bool
	tat  int64 // unix ns at which the source's allowance is whole again
}

// NewAuthThrottle returns a throttle with options o.
func NewAuthThrottle(o ThrottleOptions) *AuthThrottle {
	if o.Burst <= 0 {
		o.Burst = DefaultThrottleBurst
	}
	if o.Refill <= 0 {
		o.Refill = DefaultThrottleRefill
	}
	if o.Slots <= 0 {
		o.Slots = DefaultThrottleSlots
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := (o.Slots + throttleWays - 1) / throttleWays
	return &AuthThrottle{
		burst:  int64(o.Burst-1) * int64(o.Refill),
		refill: int64(o.Refill),
		now:    o.Now,
		seed:   maphash.MakeSeed(),
		sets:   make([][throttleWays]throttleSlot, n),
	}
}

func throttleKey(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr().As16()
	}
	return a.As16()
}

func (t *AuthThrottle) set(k [16]byte) *[throttleWays]throttleSlot {
	h := maphash.Bytes(t.seed, k[:])
	return &t.sets[h%uint64(len(t.sets))]
}

// Allow reports whether src may try to authenticate now; when it may
// not, it returns how long until it may.
func (t *AuthThrottle) Allow(src netip.Addr) (wait time.Duration, ok bool) {
	if t == nil {
		return 0, true
	}
	k := throttleKey(src)
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.set(k)
	for i := range set {
		if s := &set[i]; s.used && s.key == k {
			if d := s.tat - now - t.burst; d > 0 {
				return time.Duration(d), false
			}
			return 0, true
		}
	}
	return 0, true
}

// Fail counts one failed authentication from src.
func (t *AuthThrottle) Fail(src netip.Addr) {
	if t == nil {
		return
	}
	k := throttleKey(src)
	now := t.now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	set := t.set(k)
	var slot *throttleSlot
	for i := range set {
		if s := &set[i]; s.used && s.key == k {
			slot = s
			break
		}
	}
	if slot == nil {
		// A free slot, else the one that owes least (its allowance is
		// whole again first).
		slot = &set[0]
		for i := range set {
			s := &set[i]
			if !s.used || s.tat <= now {
				slot = s
				break
			}
			if s.tat < slot.tat {
				slot = s
			}
		}
		*slot = throttleSlot{key: k, used: true, tat: now}
	}
	slot.tat = max(slot.tat, now) + t.refill
}
