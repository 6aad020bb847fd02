// Command catalogd runs consort's state machine and Consul HTTP API: it
// follows raftd's log over raftd's socket, serves /v1 on the HTTP port and
// its own socket, and announces KV writes on NATS. See catalogd/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/consort-io/consort/catalogd"
	"github.com/consort-io/consort/pkg/bus"
	"github.com/consort-io/consort/pkg/config"
	"github.com/consort-io/consort/pkg/raftapi"
	"github.com/urfave/cli/v2"
)

func main() {
	app := &cli.App{
		Name:            "catalogd",
		Usage:           "consort's state machine and Consul HTTP API",
		Flags:           config.Flags(),
		HideHelpCommand: true,
		Action:          run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "catalogd: %v\n", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	n, err := config.FromCLI(c)
	if err != nil {
		return err
	}
	log := n.Logger("catalogd", os.Stderr)
	if err := config.EnsureNodeID(&n); err != nil {
		log.Warn("no node id; reporting raftd's server id instead", "err", err)
	}
	cfg := catalogd.ConfigFromNode(n)
	raft := raftapi.Dial(n.SocketPath("raftd"))
	defer raft.Close()
	pub := bus.NewPublisher(bus.Config{URL: n.NATS.URL, Name: "catalogd", Log: log})
	defer pub.Close()
	cfg.Raft, cfg.Bus, cfg.Log = raft, pub, log
	d, err := catalogd.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Run(ctx)
}
