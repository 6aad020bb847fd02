package testcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Etcd is a three-member etcd cluster on loopback, the benchmark peer.
type Etcd struct {
	// ClientURLs are the members' client URLs (http://127.0.0.1:port).
	ClientURLs []string
	procs      []*exec.Cmd
}

// StartEtcd starts a three-member etcd cluster from Debian's etcd-server
// (the etcd binary on PATH), with data under t.TempDir(), and waits until
// it answers. It skips the test when etcd is not installed.
func StartEtcd(t testing.TB, members int) *Etcd {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server); skipping the etcd comparison")
	}
	ports, err := freePorts(2 * members)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var initial []string
	for i := 0; i < members; i++ {
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	e := &Etcd{}
	for i := 0; i < members; i++ {
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("e%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin,
			"--name", fmt.Sprintf("e%d", i),
			"--data-dir", filepath.Join(dir, fmt.Sprintf("e%d", i)),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "bench",
			"--log-level", "error")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start etcd: %v", err)
		}
		e.procs = append(e.procs, cmd)
		e.ClientURLs = append(e.ClientURLs, client)
	}
	t.Cleanup(e.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, u := range e.ClientURLs {
		for {
			if err := etcdPut(ctx, nil, u, "ready", []byte("1")); err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("etcd at %s not ready after 60s; logs in %s", u, dir)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return e
}

func (e *Etcd) stop() {
	for _, p := range e.procs {
		syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		p.Wait()
	}
}
