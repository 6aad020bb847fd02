package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/consort-io/consort/pkg/structs"
)

// persistVersion is written into every file; a newer version is skipped
// with a warning rather than misread.
const persistVersion = 1

// persistedService is the JSON of one services/<hash>.json file.
type persistedService struct {
	Version int
	Source  string // SourceAPI or a definition file's path
	Service *structs.NodeService
}

// persistedCheck is the JSON of one checks/<hash>.json file; it carries
// the check's last status and output, so a restart does not reset them.
type persistedCheck struct {
	Version int
	Source  string
	Check   *structs.HealthCheck
}

// disk keeps agent state in a directory: services/ and checks/, one file
// per entry named by the SHA-256 of its ID (IDs may hold any character),
// each written to a temporary file, synced and renamed, so a crash
// leaves the old or the new file, never a torn one. Callers serialise
// writes (the agent's mutex).
type disk struct {
	dir string
}

func openDisk(dir string) (*disk, error) {
	for _, sub := range []string{"services", "checks"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("agent state dir: %w", err)
		}
	}
	return &disk{dir: dir}, nil
}

func fileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:]) + ".json"
}

func (d *disk) saveService(s *structs.NodeService, source string) error {
	return d.write(filepath.Join(d.dir, "services", fileName(s.ID)),
		persistedService{Version: persistVersion, Source: source, Service: s})
}

func (d *disk) saveCheck(c *structs.HealthCheck, source string) error {
	return d.write(filepath.Join(d.dir, "checks", fileName(c.CheckID)),
		persistedCheck{Version: persistVersion, Source: source, Check: c})
}

// removeService and removeCheck delete an entry's file. A failure is
// harmless after a restart: the full sync finds the entry and it is
// registered again, so it is only logged by the caller's logger later.
func (d *disk) removeService(id string) {
	os.Remove(filepath.Join(d.dir, "services", fileName(id)))
}

func (d *disk) removeCheck(id string) {
	os.Remove(filepath.Join(d.dir, "checks", fileName(id)))
}

// write replaces path with v's JSON atomically.
func (d *disk) write(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("persist %s: %w", filepath.Base(path), err)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("persist %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("persist %s: %w", filepath.Base(path), err)
	}
	// The rename is durable once the directory is synced.
	if df, err := os.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// load reads every persisted entry, in file name order. Leftover
// temporary files are removed; files that do not decode are logged and
// skipped.
func (d *disk) load(log *slog.Logger) ([]persistedService, []persistedCheck, error) {
	var svcs []persistedService
	var checks []persistedCheck
	err := d.each("services", log, func(path string, b []byte) error {
		var p persistedService
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		if p.Version > persistVersion {
			return fmt.Errorf("written by a newer catalogd (version %d)", p.Version)
		}
		svcs = append(svcs, p)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	err = d.each("checks", log, func(path string, b []byte) error {
		var p persistedCheck
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		if p.Version > persistVersion {
			return fmt.Errorf("written by a newer catalogd (version %d)", p.Version)
		}
		checks = append(checks, p)
		return nil
	})
	return svcs, checks, err
}

func (d *disk) each(sub string, log *slog.Logger, f func(path string, b []byte) error) error {
	dir := filepath.Join(d.dir, sub)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read agent state: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(dir, name)
		if strings.HasPrefix(name, ".tmp-") {
			os.Remove(path)
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(path)
		if err == nil {
			err = f(path, b)
		}
		if err != nil {
			log.Warn("agent state file skipped", "file", path, "err", err)
		}
	}
	return nil
}
