//go:build race

package score

// raceEnabled: the race detector slows the replays about tenfold, so the
// largest ones sample their corpora under it.
const raceEnabled = true
