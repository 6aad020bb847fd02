package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestNewNodeID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id, err := NewNodeID()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidNodeID(id) || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("not a v4 UUID: %s", id)
		}
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
	}
}

func TestEnsureNodeID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")

	n := Node{DataDir: dir}
	if err := EnsureNodeID(&n); err != nil {
		t.Fatal(err)
	}
	if !ValidNodeID(n.NodeID) {
		t.Fatalf("bad id %q", n.NodeID)
	}
	b, err := os.ReadFile(filepath.Join(dir, NodeIDFile))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "file", strings.TrimSpace(string(b)), n.NodeID)

	again := Node{DataDir: dir}
	if err := EnsureNodeID(&again); err != nil {
		t.Fatal(err)
	}
	eq(t, "second load", again.NodeID, n.NodeID)

	set := Node{DataDir: t.TempDir(), NodeID: "3f2a9c1e-8d4b-4f7a-9e21-5c6d7e8f9a0b"}
	if err := EnsureNodeID(&set); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(set.DataDir, NodeIDFile)); !os.IsNotExist(err) {
		t.Fatalf("configured id wrote a file: %v", err)
	}

	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left: %v", entries)
	}
}

func TestEnsureNodeIDRace(t *testing.T) {
	dir := t.TempDir()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := Node{DataDir: dir}
			if err := EnsureNodeID(&n); err != nil {
				t.Error(err)
			}
			ids[i] = n.NodeID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("different ids: %v", ids)
		}
	}
}

func TestEnsureNodeIDBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, NodeIDFile), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := Node{DataDir: dir}
	err := EnsureNodeID(&n)
	if err == nil || !strings.Contains(err.Error(), "not a UUID") {
		t.Fatalf("err = %v", err)
	}
}
