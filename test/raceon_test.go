//go:build race

package test

// raceEnabled reports whether the tests are built with -race.
const raceEnabled = true
