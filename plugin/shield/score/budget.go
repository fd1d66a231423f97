package score

import (
	"hash/maphash"
	"sync/atomic"

	"golang.org/x/net/publicsuffix"
)

// Information budgets across registered domains. A tunnel that sends one
// query per registered domain (300 base32 names under 300 domains, or
// under 300 tenants of a dynamic-DNS provider, each its own registered
// domain) never builds evidence on any one domain. So the bits of encoded
// new names also add up per client (an IPv4 address or an IPv6 /64) and
// per parent: the public suffix of the registered domain when it comes
// from the private section of the list (duckdns.org, ddns.net), not an
// ICANN suffix like com.
//
// Only encoded names (Features.encoded) take an entry: benign clients and
// benign names take no room, and the table is fixed in size.

// budgetState is one client's or one parent's budget.
type budgetState struct {
	epoch uint32    // budget-window epoch of bits
	bits  [2]uint32 // bits of encoded new names (current, previous window)
}

// spend adds bits in budget epoch at and returns the total of the window.
func (b *budgetState) spend(bits, at uint32) uint32 {
	b.roll(at)
	b.bits[0] += bits
	return b.bits[0] + b.bits[1]
}

// total returns the window's bits as they would be at epoch at.
func (b *budgetState) total(at uint32) uint32 {
	c := *b
	c.roll(at)
	return c.bits[0] + c.bits[1]
}

func (b *budgetState) roll(at uint32) {
	rollPair(&b.bits, b.epoch, at)
	b.epoch = at
}

// Budget keys: a client key and a parent key never meet, whatever the
// hash.
const (
	budgetClientTag = 0x5a17c3d2e1f00b07
	budgetParentTag = 0x0b07e1f0c3d25a17
)

// defaultBudgets is the size of the budget table: clients and parents
// that sent encoded names within two budget windows.
const defaultBudgets = 16384

// budgetPoints adds the client and parent budgets' points for a query
// with encoded new name of bits bits (0 when the name is not new), from
// client key client under the lower-case public suffix suf. With update
// false it only reads.
func (e *Engine) budgetPoints(points *[nReasons]uint8, client uint64, suf []byte, bits, now uint32, update bool) {
	at := now / budgetWindow
	how := peek
	if update {
		how = upsert
	}
	read := func(key uint64) uint32 {
		if key == 0 {
			return 0
		}
		b, unlock, _ := e.budgets.get(key, now, how)
		total := uint32(0)
		if b != nil {
			if update {
				total = b.spend(bits, at)
			} else {
				total = b.total(at)
			}
		}
		unlock.Unlock()
		return total
	}
	if client != 0 {
		budgetTier(points, reasonClientInfoBits, read(client^budgetClientTag))
	}
	if e.parents.private(suf) {
		budgetTier(points, reasonParentInfoBits, read(maphash.Bytes(e.seed, suf)^budgetParentTag|1))
	}
}

func budgetTier(points *[nReasons]uint8, reason uint8, bits uint32) {
	switch {
	case bits >= clientBits2:
		points[reason] = ptsClientBits2
	case bits >= clientBits1:
		points[reason] = ptsClientBits1
	}
}

// parentMemo remembers which public suffixes come from the private
// section of the list and have more than one label: a direct-mapped
// table of atomic words, a miss costs one library call.
type parentMemo struct {
	seed  maphash.Seed
	slots [1024]atomic.Uint64 // hash | 2 (valid) | 1 (private)
}

func newParentMemo() *parentMemo { return &parentMemo{seed: maphash.MakeSeed()} }

// private reports whether the lower-case public suffix suf is a
// private-section suffix of two or more labels.
func (m *parentMemo) private(suf []byte) bool {
	dot := false
	for _, c := range suf {
		if c == '.' {
			dot = true
			break
		}
	}
	if !dot {
		return false
	}
	h := maphash.Bytes(m.seed, suf)
	slot := &m.slots[h&(uint64(len(m.slots))-1)]
	tag := h &^ 3
	if v := slot.Load(); v&^3 == tag && v&2 != 0 {
		return v&1 != 0
	}
	ps, icann := publicsuffix.PublicSuffix(string(suf))
	priv := !icann && ps == string(suf)
	v := tag | 2
	if priv {
		v |= 1
	}
	slot.Store(v)
	return priv
}
