//go:build !race

package testcluster

// raceEnabled mirrors the test binary's -race flag onto the daemon builds.
const raceEnabled = false
