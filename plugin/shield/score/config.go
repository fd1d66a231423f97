package score

import (
	"errors"
	"fmt"
	"time"
)

// Config is the engine's configuration. The zero value of a field means
// its default.
type Config struct {
	Alert int // a score at or above it alerts; default DefaultAlert
	Block int // a score at or above it blocks and makes the verdict sticky; default DefaultBlock

	ShortWindow time.Duration // default 10 minutes
	LongWindow  time.Duration // default 24 hours
	Sticky      time.Duration // how long a block verdict lasts; default 24 hours

	Domains  int // entries of the registered-domain table; default 131072
	Clients  int // entries of the client table; default 65536
	Verdicts int // entries of the sticky-verdict table; default 16384
	Names    int // slots of the recently-seen-names table; default 1<<20

	// Verdict scopes (issue 9). A block verdict is fleet-wide when no
	// client other than the ones that earned it used the domain without
	// scoring in the last PrevalenceWindow, or when FleetClients distinct
	// clients earned it; never when PopularClients other clients used
	// it (that takes an operator: Promote). Otherwise it blocks only the
	// clients that earned it.
	FleetClients     int           // K; default DefaultFleetClients, at most 8
	PopularClients   int           // P; default DefaultPopularClients
	PrevalenceWindow time.Duration // default 7 days

	// Detectors to turn off.
	NoTunnel, NoDGA, NoNewlySeen bool

	// Exempt adds domain suffixes to the default exemptions (see
	// DefaultExempt); NoDefaultExempt drops the defaults.
	Exempt          []string
	NoDefaultExempt bool

	// Clock returns the time; default time.Now. shieldctl eval replays a
	// corpus on a synthetic clock.
	Clock func() time.Time
}

// Defaults.
const (
	// DefaultAlert and DefaultBlock: see the calibration notes on the
	// points below and in TestBenignUmbrella / TestTunnelSessions.
	DefaultAlert = 40
	DefaultBlock = 60

	DefaultShortWindow = 10 * time.Minute // DETECTION.md: unique prefixes in 10 min
	DefaultLongWindow  = 24 * time.Hour   // RITA and Paxson count per day
	DefaultSticky      = 24 * time.Hour
	DefaultDomains     = 131072  // DETECTION.md sizing sketch
	DefaultClients     = 65536   // DETECTION.md sizing sketch
	DefaultVerdicts    = 16384   // sticky verdicts
	DefaultNames       = 1 << 20 // 4 MiB of name fingerprints

	DefaultFleetClients     = 3                  // issue 9: K
	DefaultPopularClients   = 5                  // issue 9: P
	DefaultPrevalenceWindow = 7 * 24 * time.Hour // issue 9
)

// fillDefaults replaces the zero fields of cfg by their defaults and
// checks the result.
func (cfg *Config) fillDefaults() error {
	if cfg.Alert == 0 {
		cfg.Alert = DefaultAlert
	}
	if cfg.Block == 0 {
		cfg.Block = DefaultBlock
	}
	if cfg.Alert < 1 || cfg.Alert > 100 || cfg.Block < 1 || cfg.Block > 100 {
		return errors.New("thresholds must be from 1 to 100")
	}
	if cfg.Alert > cfg.Block {
		return fmt.Errorf("alert threshold %d is above the block threshold %d", cfg.Alert, cfg.Block)
	}
	durationOr := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	durationOr(&cfg.ShortWindow, DefaultShortWindow)
	durationOr(&cfg.LongWindow, DefaultLongWindow)
	durationOr(&cfg.Sticky, DefaultSticky)
	durationOr(&cfg.PrevalenceWindow, DefaultPrevalenceWindow)
	if cfg.PrevalenceWindow < 2*time.Second {
		return errors.New("the prevalence window must be at least 2s")
	}
	if cfg.FleetClients == 0 {
		cfg.FleetClients = DefaultFleetClients
	}
	if cfg.PopularClients == 0 {
		cfg.PopularClients = DefaultPopularClients
	}
	if cfg.FleetClients < 1 || cfg.FleetClients > maxEarners {
		return fmt.Errorf("fleet clients %d outside 1 to %d", cfg.FleetClients, maxEarners)
	}
	if cfg.PopularClients < 1 || cfg.PopularClients > 60 {
		return fmt.Errorf("popular clients %d outside 1 to 60", cfg.PopularClients)
	}
	if cfg.ShortWindow < time.Second || cfg.LongWindow < cfg.ShortWindow || cfg.Sticky < time.Second {
		return errors.New("windows must be at least 1s, the long one no shorter than the short one, sticky at least 1s")
	}
	sizeOr := func(n *int, def, lo, hi int, what string) error {
		if *n == 0 {
			*n = def
		}
		if *n < lo || *n > hi {
			return fmt.Errorf("%s table size %d outside %d to %d", what, *n, lo, hi)
		}
		return nil
	}
	if err := sizeOr(&cfg.Domains, DefaultDomains, nShards*ways, 1<<24, "domain"); err != nil {
		return err
	}
	if err := sizeOr(&cfg.Clients, DefaultClients, nShards*ways, 1<<22, "client"); err != nil {
		return err
	}
	if err := sizeOr(&cfg.Verdicts, DefaultVerdicts, nShards*verdictWays, 1<<22, "verdict"); err != nil {
		return err
	}
	if err := sizeOr(&cfg.Names, DefaultNames, 1024, 1<<26, "name"); err != nil {
		return err
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return nil
}
