//go:build race

package score

// raceEnabled: the race detector makes the engine some ten times slower,
// so the longest loops of the tests run shorter under it.
const raceEnabled = true
