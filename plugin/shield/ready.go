package shield

// Ready implements the ready plugin's Readiness interface: shield is ready
// once every configured list has loaded successfully at least once.
func (s *Shield) Ready() bool {
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
