package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/consort-io/consort/pkg/config"
)

// FileDefinitions are the definitions one file declares.
type FileDefinitions struct {
	File string
	Definitions
}

// LoadDefinitions reads service and check definitions from paths, each a
// file (read whatever its name) or a directory (its "*.hcl" and "*.json"
// files not starting with a dot, in lexical order, as pkg/config reads a
// config dir). A path that does not exist is an error. Every problem is
// reported, joined; the result is only meaningful when err is nil.
func LoadDefinitions(paths []string) ([]FileDefinitions, error) {
	var files []string
	var errs []error
	for _, p := range paths {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read service definitions: %w", err))
			continue
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		fs, err := config.DirFiles(p)
		if err != nil {
			errs = append(errs, err)
		}
		files = append(files, fs...)
	}
	var out []FileDefinitions
	for _, f := range files {
		src, err := config.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		defs, err := ParseDefinitions(f, src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(defs.Services) > 0 || len(defs.Checks) > 0 {
			out = append(out, FileDefinitions{File: f, Definitions: defs})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, duplicates(out)
}

// duplicates refuses two definitions with the same service or check ID.
func duplicates(files []FileDefinitions) error {
	type where struct {
		file string
		line int
	}
	svcs := map[string]where{}
	checks := map[string]where{}
	var errs []error
	dup := func(what, id string, a, b where) {
		errs = append(errs, fmt.Errorf("%s %q is defined twice: %s:%d and %s:%d", what, id,
			filepath.Base(a.file), a.line, filepath.Base(b.file), b.line))
	}
	addCheck := func(id string, w where) {
		if prev, ok := checks[id]; ok {
			dup("check", id, prev, w)
			return
		}
		checks[id] = w
	}
	for _, f := range files {
		for _, s := range f.Services {
			ns := s.NodeService()
			w := where{f.File, s.Line}
			if prev, ok := svcs[ns.ID]; ok {
				dup("service", ns.ID, prev, w)
				continue
			}
			svcs[ns.ID] = w
			for i, c := range s.Checks {
				id := c.ID
				if id == "" {
					id = ServiceCheckID(ns.ID, i, len(s.Checks))
				}
				addCheck(id, where{f.File, c.Line})
			}
		}
		for _, c := range f.Checks {
			id := c.ID
			if id == "" {
				id = c.Name
			}
			addCheck(id, where{f.File, c.Line})
		}
	}
	return errors.Join(errs...)
}
