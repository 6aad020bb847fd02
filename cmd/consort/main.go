// Command consort is the consort toolbox: `consort dev` runs a one-node
// development cluster (every daemon binary found next to consort, under a
// small supervisor, with an embedded NATS server), `consort lock` runs a
// command while holding a lock, like `consul lock`, and `consort version`
// prints the version.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/urfave/cli/v2"
)

// version is set at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func main() {
	app := &cli.App{
		Name:            "consort",
		Usage:           "service discovery and configuration, as small cooperating daemons",
		Version:         version,
		HideHelpCommand: true,
		Commands: []*cli.Command{
			devCommand(),
			lockCommand(),
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(c *cli.Context) error {
					fmt.Fprintf(c.App.Writer, "consort %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
					return nil
				},
			},
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "consort: %v\n", err)
		os.Exit(1)
	}
}
