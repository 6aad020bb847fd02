// Command gossipd runs consort's gossip membership: serf's LAN pool on
// serf_lan (8301) and, on servers, its WAN pool on serf_wan (8302). It
// serves its socket (<run_dir>/gossipd.sock). See gossipd/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/consort-io/consort/gossipd"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/config"
)

func main() {
	app := &cli.App{
		Name:            "gossipd",
		Usage:           "consort's gossip membership (serf LAN and WAN pools)",
		Flags:           config.Flags(),
		HideHelpCommand: true,
		Action:          run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "gossipd: %v\n", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	n, err := config.FromCLI(c)
	if err != nil {
		return err
	}
	// The "id" tag is the raft server ID on servers: the same kept ID.
	if err := config.EnsureNodeID(&n); err != nil {
		return err
	}
	log := n.Logger("gossipd", os.Stderr)
	pub := bus.NewPublisher(bus.Config{URL: n.NATS.URL, Name: "gossipd", Log: log})
	defer pub.Close()
	cfg := gossipd.ConfigFromNode(n)
	cfg.Bus, cfg.Log = pub, log
	d, err := gossipd.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Run(ctx)
}
