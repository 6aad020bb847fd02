package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NodeIDFile is the name of the file under data_dir that keeps a
// generated node ID across restarts.
const NodeIDFile = "node-id"

// EnsureNodeID fills n.NodeID when it is empty: from <DataDir>/node-id if
// that file exists, else with a new random UUID written there first. The
// file is created atomically and never replaced, so daemons of one node
// starting at the same moment all end up with the same ID. A NodeID set
// in the config is left alone and no file is touched.
func EnsureNodeID(n *Node) error {
	if n.NodeID != "" {
		return nil
	}
	if n.DataDir == "" {
		return errors.New("node id: data_dir not set")
	}
	path := filepath.Join(n.DataDir, NodeIDFile)
	id, err := readNodeID(path)
	if err == nil {
		n.NodeID = id
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	id, err = NewNodeID()
	if err != nil {
		return err
	}
	if err := createOnce(path, []byte(id+"\n")); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("node id: %w", err)
		}
		// Another process won the race; use its ID.
		if id, err = readNodeID(path); err != nil {
			return err
		}
	}
	n.NodeID = id
	return nil
}

func readNodeID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("node id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !ValidNodeID(id) {
		return "", fmt.Errorf("node id: %s holds %q, not a UUID; fix or remove it", path, clip(id))
	}
	return strings.ToLower(id), nil
}

// createOnce writes data to a temporary file, syncs it, and links it to
// path, which fails with os.ErrExist if path is already there: readers
// never see a partial file and an existing file is never replaced.
func createOnce(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".node-id-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: the file itself is already durable
		d.Close()
	}
	return nil
}

// NewNodeID returns a random (version 4) UUID from crypto/rand.
func NewNodeID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("node id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:]), nil
}

// ValidNodeID reports whether s is a UUID in the 8-4-4-4-12 hex form,
// either case, as Consul requires of node IDs.
func ValidNodeID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
