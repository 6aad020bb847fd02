package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxFileSize bounds one config file; larger files are refused rather
// than read into memory.
const MaxFileSize = 4 << 20

// LoadOptions says where Load reads the node config from. Every field is
// optional; the zero value yields Defaults() with the hostname filled in.
type LoadOptions struct {
	// ConfigFile is one HCL or JSON file, read first. It must exist when set.
	ConfigFile string
	// ConfigDir holds more files, read after ConfigFile in lexical order:
	// every "*.hcl" and "*.json" not starting with a dot. Other files and
	// subdirectories are skipped. It must exist when set.
	ConfigDir string
	// Env is the environment as os.Environ returns it. CONSORT_<KEY>
	// variables (see EnvName) override the files; an empty value counts
	// as unset; lists are comma-separated. Other variables are ignored.
	Env []string
	// Set holds flag overrides by dotted key path ("ports.http": "8501"),
	// applied last.
	Set map[string]string
}

// Load builds the node config: Defaults, then ConfigFile, then each file
// of ConfigDir, then Env, then Set, each overriding the earlier ones key by
// key. Top-level service, services, check and checks blocks are skipped:
// they are service definitions, read by catalogd. An empty node_name
// becomes the hostname and the datacenter is lower-cased. The result is
// checked with Validate.
//
// Every problem is reported, joined, with file and line where there is
// one: `consort.hcl:12: unknown key "port.http" (did you mean "ports"?)`.
// The returned Node is only meaningful when err is nil.
func Load(o LoadOptions) (Node, error) {
	n := Defaults()
	var errs []error
	if o.ConfigFile != "" {
		errs = append(errs, loadFile(&n, o.ConfigFile))
	}
	if o.ConfigDir != "" {
		files, err := DirFiles(o.ConfigDir)
		errs = append(errs, err)
		for _, f := range files {
			errs = append(errs, loadFile(&n, f))
		}
	}
	errs = append(errs, applyEnv(&n, o.Env), applySet(&n, o.Set))
	if err := errors.Join(errs...); err != nil {
		return n, err
	}
	if n.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return n, fmt.Errorf("node_name not set and no hostname: %w", err)
		}
		n.NodeName = h
	}
	n.Datacenter = strings.ToLower(n.Datacenter)
	return n, n.Validate()
}

// loadFile reads one file into n and records it in n.Source.
func loadFile(n *Node, path string) error {
	src, err := ReadFile(path)
	if err != nil {
		return err
	}
	n.Source = append(n.Source, path)
	return decodeFile(path, src, n)
}

// ReadFile reads one config file (node config or service definitions),
// refusing directories and files over MaxFileSize.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("read config %s: is a directory (use a config dir)", path)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("read config %s: %d bytes, more than %d", path, st.Size(), MaxFileSize)
	}
	buf, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(buf) > MaxFileSize {
		return nil, fmt.Errorf("read config %s: more than %d bytes", path, MaxFileSize)
	}
	return buf, nil
}

// DirFiles lists the config files of dir (*.hcl and *.json, not hidden,
// symlinks followed, directories skipped) in lexical order: the order
// later files override earlier ones in.
func DirFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read config dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if ext := filepath.Ext(name); ext != ".hcl" && ext != ".json" {
			continue
		}
		path := filepath.Join(dir, name)
		st, err := os.Stat(path) // follows symlinks
		if err != nil || st.IsDir() {
			continue
		}
		out = append(out, path)
	}
	sort.Strings(out)
	return out, nil
}

// applyEnv applies CONSORT_<KEY> variables; the last of duplicates wins.
func applyEnv(n *Node, env []string) error {
	var errs []error
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || val == "" {
			continue
		}
		path, known := envNames[name]
		if !known {
			continue
		}
		if err := setText(n, leaves[path], val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// applySet applies flag overrides in key order, so messages are stable.
func applySet(n *Node, set map[string]string) error {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, path := range keys {
		k, ok := leaves[path]
		if !ok {
			msg := fmt.Sprintf("--set: unknown key %q", path)
			if sug := suggest(path, Keys()); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			errs = append(errs, errors.New(msg))
			continue
		}
		if err := setText(n, k, set[path]); err != nil {
			errs = append(errs, fmt.Errorf("--set: %w", err))
		}
	}
	return errors.Join(errs...)
}
