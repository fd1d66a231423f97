package score

import (
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
)
