//go:build race

package testcluster

// raceEnabled mirrors the test binary's -race flag onto the daemon builds,
// so daemons run under the race detector whenever the tests do.
const raceEnabled = true
