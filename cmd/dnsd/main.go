// Command dnsd answers Consul's DNS forms on client_addr:ports.dns
// (127.0.0.1:8600, UDP and TCP) from a view of the catalog read from
// catalogd's HTTP API and kept fresh by bus events. See dnsd/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/consort-io/consort/dnsd"
	"github.com/consort-io/consort/pkg/config"
)

func main() {
	app := &cli.App{
		Name:            "dnsd",
		Usage:           "consort's DNS server",
		Flags:           config.Flags(),
		HideHelpCommand: true,
		Action:          run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "dnsd: %v\n", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	n, err := config.FromCLI(c)
	if err != nil {
		return err
	}
	cfg := dnsd.ConfigFromNode(n)
	if cfg.Addr == "" {
		return errors.New("dns is disabled (ports.dns = -1)")
	}
	cfg.Log = n.Logger("dnsd", os.Stderr)
	d, err := dnsd.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Run(ctx)
}
