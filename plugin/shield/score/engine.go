package score

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"
	"unsafe"
)

// Engine scores queries. It is safe for concurrent use.
type Engine struct {
	cfg       Config
	seed      maphash.Seed
	start     time.Time
	clock     func() time.Time
	sticky    uint32
	sEpochLen uint32
	lEpochLen uint32

	suffixes *suffixMemo
	exempt   map[string]struct{}
	// exemptLabels and exemptLen are the most labels and bytes of an
	// exemption.
	exemptLabels, exemptLen int
	domains                 *setTable[domainState]
	clients                 *setTable[clientState]
	verdicts                *verdictTable
	names                   *seenTable
	seen                    *bloom
}

// New makes an engine. It allocates every table now; nothing grows later.
func New(cfg Config) (*Engine, error) {
	if cfg.Alert == 0 {
		cfg.Alert = DefaultAlert
	}
	if cfg.Block == 0 {
		cfg.Block = DefaultBlock
	}
	if cfg.Alert < 1 || cfg.Alert > 100 || cfg.Block < 1 || cfg.Block > 100 {
		return nil, errors.New("thresholds must be from 1 to 100")
	}
	if cfg.Alert > cfg.Block {
		return nil, fmt.Errorf("alert threshold %d is above the block threshold %d", cfg.Alert, cfg.Block)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.ShortWindow, DefaultShortWindow)
	def(&cfg.LongWindow, DefaultLongWindow)
	def(&cfg.Sticky, DefaultSticky)
	if cfg.ShortWindow < time.Second || cfg.LongWindow < cfg.ShortWindow || cfg.Sticky < time.Second {
		return nil, errors.New("windows must be at least 1s, the long one no shorter than the short one, sticky at least 1s")
	}
	defi := func(n *int, v, lo, hi int, what string) error {
		if *n == 0 {
			*n = v
		}
		if *n < lo || *n > hi {
			return fmt.Errorf("%s table size %d outside %d to %d", what, *n, lo, hi)
		}
		return nil
	}
	if err := defi(&cfg.Domains, DefaultDomains, nShards*ways, 1<<24, "domain"); err != nil {
		return nil, err
	}
	if err := defi(&cfg.Clients, DefaultClients, nShards*ways, 1<<22, "client"); err != nil {
		return nil, err
	}
	if err := defi(&cfg.Verdicts, DefaultVerdicts, nShards*verdictWays, 1<<22, "verdict"); err != nil {
		return nil, err
	}
	if err := defi(&cfg.Names, DefaultNames, 1024, 1<<26, "name"); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	e := &Engine{
		cfg:       cfg,
		seed:      maphash.MakeSeed(),
		clock:     cfg.Clock,
		sticky:    uint32(cfg.Sticky / time.Second),
		sEpochLen: uint32(cfg.ShortWindow / time.Second),
		lEpochLen: uint32(cfg.LongWindow / time.Second),
		suffixes:  newSuffixMemo(),
		exempt:    map[string]struct{}{},
		domains:   newSetTable[domainState](cfg.Domains),
		clients:   newSetTable[clientState](cfg.Clients),
		verdicts:  newVerdictTable(cfg.Verdicts),
		names:     newSeenTable(cfg.Names),
		seen:      newBloom(1 << 22), // 2 x 512 KiB: ~1% false "seen" at 400k domains a day
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
	return e.domains.bytes() + e.clients.bytes() +
		e.verdicts.capacity*int(unsafe.Sizeof(verdict{})) +
		len(e.names.slots)*4 + len(e.seen.bits[0])*16 + suffixMemoSize*8
}
