// Command raftd runs consort's raft log: the replicated log, raft
// snapshots, leader election and bootstrap. It serves its socket
// (<run_dir>/raftd.sock) and the raft port (8300). See raftd/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/raftd"
)

func main() {
	app := &cli.App{
		Name:            "raftd",
		Usage:           "consort's replicated log (raft)",
		Flags:           config.Flags(),
		HideHelpCommand: true,
		Action:          run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "raftd: %v\n", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	n, err := config.FromCLI(c)
	if err != nil {
		return err
	}
	if !n.Server {
		return errors.New("raftd runs on server nodes only: set server = true in the node config")
	}
	// The raft server ID must never change for a data dir: no fallback.
	if err := config.EnsureNodeID(&n); err != nil {
		return err
	}
	log := n.Logger("raftd", os.Stderr)
	pub := bus.NewPublisher(bus.Config{URL: n.NATS.URL, Name: "raftd", Log: log})
	defer pub.Close()
	cfg := raftd.ConfigFromNode(n)
	cfg.Bus, cfg.Log = pub, log
	d, err := raftd.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Run(ctx)
}
