//go:build race

package routes_test

// raceDetector is set in a -race build, whose instrumentation (and
// sync.Pool, which drops items at random under it) adds allocations.
const raceDetector = true
