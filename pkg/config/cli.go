package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Default places of the node config, used when the flags are not given
// and the file or directory exists.
const (
	DefaultConfigFile = "/etc/consort/consort.hcl"
	DefaultConfigDir  = "/etc/consort/consort.d"
)

// Flag names shared by every daemon.
const (
	FlagConfigFile = "config-file"
	FlagConfigDir  = "config-dir"
	FlagSet        = "set"
)

// shortcuts maps convenience flags to the key they set. They apply
// before --set, so an explicit --set wins.
var shortcuts = []struct{ flag, key, usage string }{
	{"node", "node_name", "node name (default: the hostname)"},
	{"datacenter", "datacenter", "datacenter name"},
	{"data-dir", "data_dir", "state directory"},
	{"run-dir", "run_dir", "directory of the local sockets"},
	{"nats-url", "nats.url", "NATS server URL(s), comma-separated"},
	{"log-level", "log_level", "trace, debug, info, warn or error"},
}

// Flags returns the node-config flags every daemon main adds to its
// cli.App: --config-file, --config-dir, repeatable --set key=value, and
// shortcuts for common keys. Each call returns fresh flag values.
func Flags() []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{
			Name:    FlagConfigFile,
			Usage:   "node config file, HCL or JSON (skipped if the default is missing)",
			Value:   DefaultConfigFile,
			EnvVars: []string{"CONSORT_CONFIG_FILE"},
		},
		&cli.StringFlag{
			Name:    FlagConfigDir,
			Usage:   "directory of *.hcl and *.json files read after the config file (skipped if the default is missing)",
			Value:   DefaultConfigDir,
			EnvVars: []string{"CONSORT_CONFIG_DIR"},
		},
		&cli.GenericFlag{
			Name:  FlagSet,
			Usage: `override one config key, e.g. --set ports.http=8501 (repeatable; lists comma-separated)`,
			Value: &setValue{},
		},
	}
	for _, s := range shortcuts {
		fs = append(fs, &cli.StringFlag{Name: s.flag, Usage: s.usage + " (key " + s.key + ")"})
	}
	return fs
}

// FromCLI loads the node config named by the Flags of c, with the process
// environment: Load(LoadOptions{ConfigFile, ConfigDir, os.Environ(), Set}).
func FromCLI(c *cli.Context) (Node, error) {
	o := LoadOptions{Env: os.Environ(), Set: map[string]string{}}
	o.ConfigFile = pathFlag(c, FlagConfigFile)
	o.ConfigDir = pathFlag(c, FlagConfigDir)
	for _, s := range shortcuts {
		if c.IsSet(s.flag) {
			o.Set[s.key] = c.String(s.flag)
		}
	}
	if v, ok := c.Generic(FlagSet).(*setValue); ok {
		for _, p := range v.pairs {
			k, val, _ := strings.Cut(p, "=")
			o.Set[strings.TrimSpace(k)] = val
		}
	}
	return Load(o)
}

// pathFlag returns the flag's value; when the flag was not given, a
// default that does not exist on this machine becomes "" so Load skips it.
func pathFlag(c *cli.Context, name string) string {
	p := c.String(name)
	if c.IsSet(name) || p == "" {
		return p
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return p
}

// setValue collects repeated --set key=value flags without splitting on
// commas, so list values survive.
type setValue struct{ pairs []string }

func (s *setValue) Set(v string) error {
	k, _, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	s.pairs = append(s.pairs, v)
	return nil
}

func (s *setValue) String() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.pairs, " ")
}

// Logger returns a text slog logger writing to w at n.LogLevel (info if
// the level is bad), with the attribute daemon=<daemon>.
func (n Node) Logger(daemon string, w io.Writer) *slog.Logger {
	lvl, _ := parseLevel(n.LogLevel)
	h := slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: lvl,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey {
				if l, ok := a.Value.Any().(slog.Level); ok && l < slog.LevelDebug {
					a.Value = slog.StringValue("TRACE")
				}
			}
			return a
		},
	})
	return slog.New(h).With("daemon", daemon)
}
