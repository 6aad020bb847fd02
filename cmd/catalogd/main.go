// Command catalogd runs consort's state machine and Consul HTTP API: it
// follows raftd's log over raftd's socket, serves /v1 on the HTTP port and
// its own socket, keeps this node's agent state (services and checks,
// from the API and the config's service definitions, reloaded on SIGHUP)
// in the catalog, and announces writes on NATS. See catalogd/README.md.
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
	cfg.ServiceDefinitions = definitionPaths(c)
	d, err := catalogd.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads the service definitions, as it reloads Consul's.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading service definitions")
				d.Reload()
			}
		}
	}()
	return d.Run(ctx)
}

// definitionPaths are where service definitions live: the node's config
// file and config dir, as the flags name them (a default that does not
// exist is skipped, as config.FromCLI skips it).
func definitionPaths(c *cli.Context) []string {
	var paths []string
	for _, flag := range []string{config.FlagConfigFile, config.FlagConfigDir} {
		p := c.String(flag)
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil && !c.IsSet(flag) {
			continue
		}
		paths = append(paths, p)
	}
	return paths
}
