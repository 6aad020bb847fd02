package healthd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/healthapi"
)

func TestConfigFromNode(t *testing.T) {
	n := config.Defaults()
	n.NodeName = "web-1"
	n.RunDir = "/tmp/run"
	n.ClientAddr = "0.0.0.0"
	n.Ports.HTTP = 8501
	c := ConfigFromNode(n)
	if c.Node != "web-1" || c.SocketPath != "/tmp/run/healthd.sock" || c.CatalogSocket != "/tmp/run/catalogd.sock" || c.HTTPAddr != "127.0.0.1:8501" {
		t.Errorf("config %+v", c)
	}
	if c.EnableScriptChecks {
		t.Error("script checks enabled by default")
	}
	n.Ports.HTTP = -1
	if c := ConfigFromNode(n); c.HTTPAddr != "" {
		t.Errorf("http off: HTTPAddr %q", c.HTTPAddr)
	}
	if err := ConfigFromNode(n).withDefaults().Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestValidate(t *testing.T) {
	c := Config{MaxRunning: -1, ReconnectMin: time.Second, ReconnectMax: time.Millisecond, HTTPAddr: "nope"}.withDefaults()
	err := c.Validate()
	for _, want := range []string{"node name", "max running", "reconnect backoff", "http address"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a config without a node")
	}
}

// TestRunOnUnixSocket runs healthd on real Unix sockets with catalogd
// absent: it serves its socket, says the stream is down, and stops
// cleanly; Close is idempotent.
func TestRunOnUnixSocket(t *testing.T) {
	dir, err := filepathShort(t)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{
		Node:          "node-1",
		SocketPath:    filepath.Join(dir, "healthd.sock"),
		CatalogSocket: filepath.Join(dir, "catalogd.sock"),
		Log:           testLogger(t),
		ReconnectMin:  5 * time.Millisecond,
		ReconnectMax:  10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	<-d.Ready()
	hc := healthapi.Dial(filepath.Join(dir, "healthd.sock"))
	defer hc.Close()
	st, err := hc.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Connected || len(st.Checks) != 0 || st.MaxRunning != DefaultMaxRunning {
		t.Errorf("status %+v", st)
	}
	if err := hc.UpdateTTL(context.Background(), "x", "passing", ""); !errors.Is(err, healthapi.ErrUnknownCheck) {
		t.Errorf("UpdateTTL: %v", err)
	}
	d.Close()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	d.Close()
	if err := d.Run(context.Background()); err != nil {
		t.Errorf("Run after Close: %v", err)
	}
}

// filepathShort makes a temporary directory short enough for Unix socket
// paths.
func filepathShort(t *testing.T) (string, error) {
	dir, err := os.MkdirTemp("", "hd")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, nil
}
