//go:build !race

package routes_test

const raceDetector = false
