package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

func init() {
	register(command{name: "check", summary: "validate the config and policies", run: runCheck})
}

const checkUsage = `Usage: gatehouse check [--config gatehouse.yaml]

Loads and validates the config, then runs every check the packages register
(routes, trusted proxies, admin token; policies compile and their tests
pass). Prints every problem found, one per line, as

    file:line: field: message

Exit codes: 0 the config is valid; 1 problems were found; 2 usage error.

Flags:
`

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	path := fs.String("config", "gatehouse.yaml", "the config file")
	if stop, code := parseFlags(fs, checkUsage, args, stdout, stderr); stop {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	if err := proxy.Check(ctx, cfg); err != nil {
		for _, e := range flatten(err) {
			fmt.Fprintln(stderr, e.Error())
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes)\n", cfg.Path, len(cfg.Routes))
	return 0
}
