// Command healthd runs this node's health checks and reports their status
// changes to catalogd. It serves its socket (<run_dir>/healthd.sock) and
// reads check definitions from catalogd's (<run_dir>/catalogd.sock). See
// healthd/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/consort-io/consort/healthd"
	"github.com/consort-io/consort/pkg/config"
)

func main() {
	app := &cli.App{
		Name:            "healthd",
		Usage:           "consort's health check runner",
		Flags:           config.Flags(),
		HideHelpCommand: true,
		Action:          run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "healthd: %v\n", err)
		os.Exit(1)
	}
}

func run(c *cli.Context) error {
	n, err := config.FromCLI(c)
	if err != nil {
		return err
	}
	cfg := healthd.ConfigFromNode(n)
	cfg.Log = n.Logger("healthd", os.Stderr)
	d, err := healthd.New(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Run(ctx)
}
