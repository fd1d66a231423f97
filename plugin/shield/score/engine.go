package score

import (
	"fmt"
	"hash/maphash"
	"strings"
	"time"
	"unsafe"
)

// Engine scores queries. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	seed    maphash.Seed // of the keys kept only while the process runs
	keySeed uint64       // of domain and client keys (keys.go); a handover and the state file carry it
	start   time.Time    // engine second 1; one long window before New (a handover or a loaded state carries it)
	clock   func() time.Time

	// historyFrom is when the first-seen history began: when New ran, or
	// the start of the history a handover or a loaded state carried.
	// newlyFrom is the engine second from which that history covers a
	// long window; newly_seen gives no points before it (history.go).
	// Both are set before the engine scores its first query.
	historyFrom time.Time
	newlyFrom   uint32

	// Durations in engine seconds.
	stickyFor, shortEpochLen, longEpochLen uint32

	suffixes *suffixMemo
	exempt   map[string]struct{}
	// exemptLabels and exemptLen are the most labels and bytes of an
	// exemption.
	exemptLabels, exemptLen int

	domains     *setTable[domainState] // per registered domain
	clients     *setTable[clientState] // per client that got NXDOMAINs
	verdicts    *verdictTable          // sticky blocks
	records     *verdictRecords        // names and earners of the verdicts
	prev        *prevalence            // distinct clients per domain over the prevalence window
	recentNames *seenTable             // exact names queried recently
	history     *bloom                 // registered domains seen in the last one to two long windows
	dgaEvidence *dgaEvidence           // per-client DGA evidence (dga.go)
	budgets     *setTable[budgetState] // information budgets per client and per parent (budget.go)
	parents     *parentMemo            // private-section public suffixes (budget.go)
}

// historyBits is the size of each of the two first-seen filters: 2 x 512
// KiB, about 1% false "seen" at 400k domains a day.
const historyBits = 1 << 22

// New makes an engine. It allocates every table now; nothing grows later.
func New(cfg Config) (*Engine, error) { return newEngine(cfg, historyBits) }

// newEngine is New with first-seen filters of bloomBits bits each (the
// fuzz test uses small ones).
func newEngine(cfg Config, bloomBits int) (*Engine, error) {
	if err := cfg.fillDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:           cfg,
		seed:          maphash.MakeSeed(),
		keySeed:       newKeySeed(),
		clock:         cfg.Clock,
		stickyFor:     uint32(cfg.Sticky / time.Second),
		shortEpochLen: uint32(cfg.ShortWindow / time.Second),
		longEpochLen:  uint32(cfg.LongWindow / time.Second),
		suffixes:      newSuffixMemo(),
		exempt:        map[string]struct{}{},
		domains:       newSetTable[domainState](cfg.Domains),
		clients:       newSetTable[clientState](cfg.Clients),
		verdicts:      newVerdictTable(cfg.Verdicts, uint32(cfg.Sticky/time.Second)),
		prev:          newPrevalence(cfg.Domains/4, uint32(cfg.PrevalenceWindow/2/time.Second)),
		recentNames:   newSeenTable(cfg.Names),
		history:       newBloom(bloomBits),
		dgaEvidence:   newDGAEvidence(dgaEvidenceSlots),
		budgets:       newSetTable[budgetState](defaultBudgets),
		parents:       newParentMemo(),
	}
	// The engine clock starts one long window in the past so that 0 can
	// mean "never".
	now := cfg.Clock()
	e.start = now.Add(-cfg.LongWindow)
	e.setHistoryFrom(now)
	e.records = newVerdictRecords(e.verdicts.capacity)
	e.prev.start(e.now())
	if !cfg.NoDefaultExempt {
		for _, s := range DefaultExempt {
			e.exempt[s] = struct{}{}
		}
	}
	for _, s := range cfg.Exempt {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		if s == "" || strings.ContainsAny(s, " \t/\\") {
			return nil, fmt.Errorf("invalid exemption %q", s)
		}
		e.exempt[s] = struct{}{}
	}
	for s := range e.exempt {
		if n := strings.Count(s, ".") + 1; n > e.exemptLabels {
			e.exemptLabels = n
		}
		if len(s) > e.exemptLen {
			e.exemptLen = len(s)
		}
	}
	return e, nil
}

// Config returns the configuration in force, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

func (e *Engine) now() uint32 {
	d := e.clock().Sub(e.start)
	if d < 0 {
		return 1
	}
	return uint32(d/time.Second) + 1
}

// Stats is the occupancy of the engine's tables.
type Stats struct {
	Domains, DomainsCap, Clients, ClientsCap, Verdicts, VerdictsCap     int
	DomainEvictions, ClientEvictions, VerdictEvictions, VerdictsRefused uint64
	// VerdictsRefusedShare counts new verdicts not stored because their
	// client held its share of the verdict table (the queries were
	// blocked all the same).
	VerdictsRefusedShare uint64
	Bytes                int // memory of all tables
}

// Stats returns the table occupancy.
func (e *Engine) Stats() Stats {
	return Stats{
		Domains: int(e.domains.used.Load()), DomainsCap: e.domains.capacity,
		Clients: int(e.clients.used.Load()), ClientsCap: e.clients.capacity,
		Verdicts: int(e.verdicts.used.Load()), VerdictsCap: e.verdicts.capacity,
		DomainEvictions: e.domains.evicted.Load(), ClientEvictions: e.clients.evicted.Load(),
		VerdictEvictions: e.verdicts.evicted.Load(), VerdictsRefused: e.verdicts.refused.Load(),
		VerdictsRefusedShare: e.verdicts.refusedShare.Load(),
		Bytes:                e.MemoryBound(),
	}
}

// MemoryBound is the memory, in bytes, of every table of the engine. It is
// fixed when the engine is made. Every table but the verdict records is
// allocated then; the records (names and earners of verdicts) are
// bounded by the verdict table's capacity.
func (e *Engine) MemoryBound() int {
	return e.domains.bytes() + e.clients.bytes() + e.budgets.bytes() + len(e.parents.slots)*8 +
		e.verdicts.capacity*(int(unsafe.Sizeof(verdict{}))+recordBytes) +
		len(e.verdicts.hint)*8 + len(e.verdicts.share)*8 + e.prev.bytes() +
		len(e.recentNames.slots)*4 + len(e.history.bits[0])*16 + suffixMemoSize*8 +
		len(e.dgaEvidence.slots)*8
}
