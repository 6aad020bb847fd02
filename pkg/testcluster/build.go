package testcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// packages lists the main packages Build compiles, relative to the module
// root. Their binaries are named after the last path element.
var packages = []string{"./cmd/raftd", "./cmd/catalogd", "./cmd/healthd", "./cmd/dnsd", "./cmd/consort"}

// binDirPrefix names the per-process binary directories under os.TempDir.
const binDirPrefix = "consort-testcluster-"

var build struct {
	once sync.Once
	dir  string
	err  error
}

// Build compiles the consort binaries (raftd, catalogd, healthd, dnsd and
// consort) once per test process and returns the directory holding them.
// Later calls return the same directory, or fail the same way. Under
// -short it skips the test. When the test binary was built with -race, the
// daemons are too.
//
// The directory is os.TempDir()/consort-testcluster-<pid>; directories left
// by test processes that no longer run are removed on the first call.
func Build(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("real processes; skipped under -short")
	}
	build.once.Do(func() {
		build.dir, build.err = buildBinaries()
	})
	if build.err != nil {
		t.Fatalf("testcluster: %v", build.err)
	}
	return build.dir
}

// RequireBinaries builds the binaries like Build and also fails the test
// unless every daemon in daemons exists in the build directory. It returns
// the directory.
func RequireBinaries(t testing.TB, daemons ...string) string {
	t.Helper()
	dir := Build(t)
	for _, d := range daemons {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Fatalf("testcluster: binary %s missing: %v", d, err)
		}
	}
	return dir
}

func buildBinaries() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	removeStaleBinDirs()
	dir := filepath.Join(os.TempDir(), binDirPrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make binary dir: %w", err)
	}
	// No VCS stamping: a test build needs none, and it fails in a
	// repository without commits.
	args := []string{"build", "-buildvcs=false"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", dir+string(filepath.Separator))
	args = append(args, packages...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, out.String())
	}
	return dir, nil
}

// moduleRoot finds the directory of the main module's go.mod; go test runs
// tests in their package directory, somewhere below it.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// removeStaleBinDirs deletes binary directories of test processes that have
// exited. Errors are ignored: this is tidying, not correctness.
func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), binDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(m)
		}
	}
}
