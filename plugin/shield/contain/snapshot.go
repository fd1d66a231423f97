package contain

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"net/netip"
	"time"
)

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
