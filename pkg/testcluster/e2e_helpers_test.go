package testcluster

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// waitFor polls cond every 50 ms until it returns nil or the deadline
// passes, then fails with cond's last error.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kvState is a replica's whole KV state as a stale recurse list shows it.
type kvState struct {
	Index uint64
	Pairs api.KVPairs
}

// staleState reads every key from n without asking the leader.
func staleState(n *Node, c *api.Client) (kvState, error) {
	pairs, meta, err := c.KV().List("", &api.QueryOptions{AllowStale: true})
	if err != nil {
		return kvState{}, fmt.Errorf("%s: list: %w", n.Name, err)
	}
	return kvState{Index: meta.LastIndex, Pairs: pairs}, nil
}

// waitSameState waits until every given node's stale state is identical
// and returns it.
func waitSameState(t testing.TB, nodes []*Node, limit time.Duration) kvState {
	t.Helper()
	clients := make([]*api.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = n.APIClient(t)
	}
	var got kvState
	waitFor(t, limit, "replicas converge", func() error {
		var first kvState
		for i, n := range nodes {
			s, err := staleState(n, clients[i])
			if err != nil {
				return err
			}
			if i == 0 {
				first = s
				continue
			}
			if !reflect.DeepEqual(first.Pairs, s.Pairs) {
				return fmt.Errorf("%s has %d keys at index %d, %s has %d keys at index %d",
					nodes[0].Name, len(first.Pairs), first.Index, n.Name, len(s.Pairs), s.Index)
			}
		}
		got = first
		return nil
	})
	return got
}

// writer puts keys w-0, w-1, … through one node's HTTP API until stopped,
// recording which puts were acknowledged.
type writer struct {
	mu    sync.Mutex // guards acked and failed
	acked []string
	// failed counts errors: expected while a daemon is down.
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func startWriter(t testing.TB, c *api.Client, prefix string) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			key := fmt.Sprintf("%s/%06d", prefix, i)
			_, err := c.KV().Put(&api.KVPair{Key: key, Value: []byte(key)}, nil)
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, key)
			} else {
				w.failed++
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	return w
}

// waitAcked waits until at least n more writes were acknowledged.
func (w *writer) waitAcked(t testing.TB, n int) {
	t.Helper()
	w.mu.Lock()
	target := len(w.acked) + n
	w.mu.Unlock()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d acknowledged writes", n), func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.acked) >= target {
			return nil
		}
		return fmt.Errorf("%d of %d acknowledged (%d failed)", len(w.acked), target, w.failed)
	})
}

func (w *writer) finish() []string {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.acked...)
}

// requireAcked fails unless every acknowledged key is in the state.
func requireAcked(t testing.TB, s kvState, acked []string) {
	t.Helper()
	have := map[string]bool{}
	for _, p := range s.Pairs {
		have[p.Key] = true
	}
	var lost []string
	for _, k := range acked {
		if !have[k] {
			lost = append(lost, k)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d acknowledged writes lost, e.g. %s", len(lost), len(acked), strings.Join(lost[:min(5, len(lost))], ", "))
	}
}

// rawGet issues a GET and returns status, headers and body.
func rawGet(t testing.TB, addr, path string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, b.String()
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
