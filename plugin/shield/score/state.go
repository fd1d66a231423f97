package score

// domainState is what the engine keeps per registered domain. Counters
// come in pairs for two epochs (current, previous) of a window; a window's
// value is their sum, so it covers between one and two window lengths.
//
// Its key and the time of its last use live in the table's index
// (tables.go), not here.
type domainState struct {
	first    uint32 // engine seconds when first seen; 0: known from before (Bloom filter)
	sEpoch   uint32 // short-window epoch of the counters
	lEpoch   uint32 // long-window epoch of the counters
	sUniq    [2]uint16
	sEnc     [2]uint16
	lUniq    [2]uint32 // unique prefixes
	lEnc     [2]uint32 // unique prefixes that look encoded
	lBits    [2]uint32 // information bits of the unique prefixes
	lQ       [2]uint32 // queries
	lNonIP   [2]uint32 // TXT, NULL and private-type queries
	lResp    [2]uint32 // responses seen
	lNX      [2]uint32 // NXDOMAIN responses
	clients  [4]uint16 // fingerprints of distinct clients in the long window
	nClients uint8     // distinct clients, saturating at len(clients)+1
}

func sum2(a [2]uint32) uint32 { return a[0] + a[1] }
func sum2s(a [2]uint16) int   { return int(a[0]) + int(a[1]) }

// roll moves the pairs forward to epoch e.
func rollPair32(p *[2]uint32, from, to uint32) {
	switch {
	case to == from:
	case to == from+1:
		p[1], p[0] = p[0], 0
	default:
		p[0], p[1] = 0, 0
	}
}

func rollPair16(p *[2]uint16, from, to uint32) {
	switch {
	case to == from:
	case to == from+1:
		p[1], p[0] = p[0], 0
	default:
		p[0], p[1] = 0, 0
	}
}

func (d *domainState) roll(sEpoch, lEpoch uint32) {
	if d.sEpoch != sEpoch {
		rollPair16(&d.sUniq, d.sEpoch, sEpoch)
		rollPair16(&d.sEnc, d.sEpoch, sEpoch)
		d.sEpoch = sEpoch
	}
	if d.lEpoch != lEpoch {
		for _, p := range []*[2]uint32{&d.lUniq, &d.lEnc, &d.lBits, &d.lQ, &d.lNonIP, &d.lResp, &d.lNX} {
			rollPair32(p, d.lEpoch, lEpoch)
		}
		if lEpoch != d.lEpoch+1 {
			d.clients = [4]uint16{}
			d.nClients = 0
		}
		d.lEpoch = lEpoch
	}
}

// addClient records a client fingerprint for prevalence.
func (d *domainState) addClient(fp uint16) {
	for i := 0; i < int(d.nClients) && i < len(d.clients); i++ {
		if d.clients[i] == fp {
			return
		}
	}
	if int(d.nClients) < len(d.clients) {
		d.clients[d.nClients] = fp
	}
	if int(d.nClients) <= len(d.clients) {
		d.nClients++
	}
}

// clientState is what the engine keeps per client (IPv4 /32, IPv6 /64).
// Its key and the time of its last use live in the table's index
// (tables.go).
type clientState struct {
	sEpoch  uint32
	nx      [2]uint64 // bitmap of NXDOMAIN registered domains, per short epoch
	ok      [2]uint16 // NOERROR answers for new, unpopular domains, per short epoch
	suspect uint32    // engine seconds until which the client is suspect
	profile nxProfile // what the NXDOMAIN names looked like (shape.go)
}

// roll moves the per-epoch counters to short epoch e. A whole window
// without an NXDOMAIN clears the profile.
func (c *clientState) roll(e uint32) {
	if c.sEpoch == e {
		return
	}
	if e == c.sEpoch+1 {
		c.nx[1], c.nx[0] = c.nx[0], 0
		c.ok[1], c.ok[0] = c.ok[0], 0
	} else {
		c.nx, c.ok = [2]uint64{}, [2]uint16{}
	}
	if c.nx[1] == 0 {
		c.profile = nxProfile{}
	}
	c.sEpoch = e
}

// odds returns (distinct NXDOMAIN domains + 1) / (NOERROR answers + 1) as
// they would be in short epoch e, without changing c.
func (c *clientState) odds(e uint32) float64 {
	nx, ok := c.nx, c.ok
	switch {
	case e == c.sEpoch:
	case e == c.sEpoch+1:
		nx[1], nx[0], ok[1], ok[0] = nx[0], 0, ok[0], 0
	default:
		return 0
	}
	return float64(distinct64(nx[0]|nx[1])+1) / float64(int(ok[0])+int(ok[1])+1)
}
