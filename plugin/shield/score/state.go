package score

// domainState is what the engine keeps per registered domain. Counters
// come in pairs for two epochs (current, previous) of a window; a window's
// value is their sum, so it covers between one and two window lengths.
//
// Its key and the time of its last use live in the table's index
// (tables.go), not here.
type domainState struct {
	first        uint32    // engine seconds when first seen; 0: known from before (Bloom filter)
	shortEpoch   uint32    // short-window epoch of the counters
	longEpoch    uint32    // long-window epoch of the counters
	shortUnique  [2]uint16 // unique prefixes in the short window, saturating
	shortEncoded [2]uint16 // of those, prefixes that look encoded
	unique       [2]uint32 // unique prefixes in the long window
	encoded      [2]uint32 // of those, prefixes that look encoded
	infoBits     [2]uint32 // information bits of the unique prefixes
	queries      [2]uint32 // queries in the long window
	nonIPQueries [2]uint32 // of those, TXT, NULL and private-type queries
	responses    [2]uint32 // responses seen in the long window
	nxdomains    [2]uint32 // of those, NXDOMAIN responses
	clients      [4]uint16 // fingerprints of distinct clients in the long window
	nClients     uint8     // distinct clients, saturating at len(clients)+1
	randomSeen   bool      // a client slot below has counted a random-looking name

	// Per client of clients (the same slot), what makes the tunnel shape
	// of one client asking many random names under one domain, apart
	// from many clients asking a few each (telemetry, CDN hashes).
	slotRandom [4]uint16    // random-looking new names of a non-address type, long window, saturating
	hourEpoch  uint32       // budget-window epoch of slotBits
	slotBits   [2][4]uint32 // information bits of random-looking new names, per budget window (current, previous)
}

func sumPair(a [2]uint32) uint32   { return a[0] + a[1] }
func sumShortPair(a [2]uint16) int { return int(a[0]) + int(a[1]) }

// rollPair moves a pair of counters (current, previous) from epoch from to
// epoch to.
func rollPair[T uint16 | uint32](p *[2]T, from, to uint32) {
	switch {
	case to == from:
	case to == from+1:
		p[1], p[0] = p[0], 0
	default:
		p[0], p[1] = 0, 0
	}
}

// roll moves the counters forward to the given epochs; a long epoch
// skipped also forgets the clients.
func (d *domainState) roll(shortEpoch, longEpoch uint32) {
	if d.shortEpoch != shortEpoch {
		rollPair(&d.shortUnique, d.shortEpoch, shortEpoch)
		rollPair(&d.shortEncoded, d.shortEpoch, shortEpoch)
		d.shortEpoch = shortEpoch
	}
	if d.longEpoch != longEpoch {
		for _, p := range []*[2]uint32{&d.unique, &d.encoded, &d.infoBits, &d.queries, &d.nonIPQueries, &d.responses, &d.nxdomains} {
			rollPair(p, d.longEpoch, longEpoch)
		}
		if longEpoch != d.longEpoch+1 {
			d.clients = [4]uint16{}
			d.nClients = 0
			d.slotRandom = [4]uint16{}
			d.randomSeen = false
		} else {
			for i := range d.slotRandom {
				d.slotRandom[i] /= 2 // older than a long window: half weight
			}
		}
		d.longEpoch = longEpoch
	}
}

// rollHour moves slotBits to budget epoch to.
func (d *domainState) rollHour(to uint32) {
	switch {
	case to == d.hourEpoch:
	case to == d.hourEpoch+1:
		d.slotBits[1], d.slotBits[0] = d.slotBits[0], [4]uint32{}
	default:
		d.slotBits = [2][4]uint32{}
	}
	d.hourEpoch = to
}

// addClient records a client fingerprint for prevalence and returns its
// slot, or -1 when the client came after the first len(clients).
func (d *domainState) addClient(fp uint16) int {
	for i := 0; i < int(d.nClients) && i < len(d.clients); i++ {
		if d.clients[i] == fp {
			return i
		}
	}
	slot := -1
	if int(d.nClients) < len(d.clients) {
		d.clients[d.nClients] = fp
		slot = int(d.nClients)
	}
	if int(d.nClients) <= len(d.clients) {
		d.nClients++
	}
	return slot
}

// topSlot returns the most random-looking new names of a non-address
// type, and the most information bits in the budget window, that one
// client sent under the domain.
func (d *domainState) topSlot() (random int, bits uint32) {
	for i := range d.clients {
		if r := int(d.slotRandom[i]); r > random {
			random = r
		}
		if b := d.slotBits[0][i] + d.slotBits[1][i]; b > bits {
			bits = b
		}
	}
	return random, bits
}

// clientState is what the engine keeps per client (IPv4 /32, IPv6 /64).
// Its key and the time of its last use live in the table's index
// (tables.go).
type clientState struct {
	shortEpoch uint32
	nxDomains  [2]uint64 // bitmap of NXDOMAIN registered domains, per short epoch
	answered   [2]uint16 // NOERROR answers for new, unpopular domains, per short epoch
	suspect    uint32    // engine seconds until which the client is suspect
	profile    nxProfile // what the NXDOMAIN names looked like (shape.go)
}

// roll moves the per-epoch counters to short epoch to. A whole window
// without an NXDOMAIN clears the profile.
func (c *clientState) roll(to uint32) {
	if c.shortEpoch == to {
		return
	}
	if to == c.shortEpoch+1 {
		c.nxDomains[1], c.nxDomains[0] = c.nxDomains[0], 0
		c.answered[1], c.answered[0] = c.answered[0], 0
	} else {
		c.nxDomains, c.answered = [2]uint64{}, [2]uint16{}
	}
	if c.nxDomains[1] == 0 {
		c.profile = nxProfile{}
	}
	c.shortEpoch = to
}

// odds returns (distinct NXDOMAIN domains + 1) / (NOERROR answers + 1) as
// they would be in short epoch at, without changing c.
func (c *clientState) odds(at uint32) float64 {
	nx, answered := c.nxDomains, c.answered
	switch {
	case at == c.shortEpoch:
	case at == c.shortEpoch+1:
		nx[1], nx[0], answered[1], answered[0] = nx[0], 0, answered[0], 0
	default:
		return 0
	}
	return float64(distinct64(nx[0]|nx[1])+1) / float64(int(answered[0])+int(answered[1])+1)
}
