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
	cfg   Config
	seed  maphash.Seed
	start time.Time // engine second 1; one long window before New
	clock func() time.Time

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
	recentNames *seenTable             // exact names queried recently
	history     *bloom                 // registered domains seen in the last one to two long windows
	budgets     *setTable[budgetState] // information budgets per client and per parent (budget.go)
	parents     *parentMemo            // private-section public suffixes (budget.go)
}

// New makes an engine. It allocates every table now; nothing grows later.
func New(cfg Config) (*Engine, error) {
	if err := cfg.fillDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:           cfg,
		seed:          maphash.MakeSeed(),
		clock:         cfg.Clock,
		stickyFor:     uint32(cfg.Sticky / time.Second),
		shortEpochLen: uint32(cfg.ShortWindow / time.Second),
		longEpochLen:  uint32(cfg.LongWindow / time.Second),
		suffixes:      newSuffixMemo(),
		exempt:        map[string]struct{}{},
		domains:       newSetTable[domainState](cfg.Domains),
		clients:       newSetTable[clientState](cfg.Clients),
		verdicts:      newVerdictTable(cfg.Verdicts),
		recentNames:   newSeenTable(cfg.Names),
		history:       newBloom(1 << 22), // 2 x 512 KiB: ~1% false "seen" at 400k domains a day
		budgets:       newSetTable[budgetState](defaultBudgets),
		parents:       newParentMemo(),
	}
	// The engine clock starts one long window in the past so that 0 can
	// mean "never".
	e.start = cfg.Clock().Add(-cfg.LongWindow)
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
	Bytes                                                               int // memory of all tables
}

// Stats returns the table occupancy.
func (e *Engine) Stats() Stats {
	return Stats{
		Domains: int(e.domains.used.Load()), DomainsCap: e.domains.capacity,
		Clients: int(e.clients.used.Load()), ClientsCap: e.clients.capacity,
		Verdicts: int(e.verdicts.used.Load()), VerdictsCap: e.verdicts.capacity,
		DomainEvictions: e.domains.evicted.Load(), ClientEvictions: e.clients.evicted.Load(),
		VerdictEvictions: e.verdicts.evicted.Load(), VerdictsRefused: e.verdicts.refused.Load(),
		Bytes: e.MemoryBound(),
	}
}

// MemoryBound is the memory, in bytes, of every table of the engine. It is
// fixed when the engine is made.
func (e *Engine) MemoryBound() int {
	return e.domains.bytes() + e.clients.bytes() + e.budgets.bytes() + len(e.parents.slots)*8 +
		e.verdicts.capacity*int(unsafe.Sizeof(verdict{})) +
		len(e.recentNames.slots)*4 + len(e.history.bits[0])*16 + suffixMemoSize*8
}
