//go:build race

package feed

// raceEnabled reports whether the race detector is on; long loads skip under it.
const raceEnabled = true
