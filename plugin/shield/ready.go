package shield

// Ready implements the ready plugin's Readiness interface: shield is ready
// once every configured list (walled gardens included) has loaded
// successfully at least once.
func (s *Shield) Ready() bool {
	if s.warden != nil {
		for _, l := range s.warden.garden {
			if l.Snapshot() == nil {
				return false
			}
		}
	}
	for _, l := range s.allows {
		if l.Snapshot() == nil {
			return false
		}
	}
	for _, l := range s.blocks {
		if l.Snapshot() == nil {
			return false
		}
	}
	return true
}
