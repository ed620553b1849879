// Command gatehouse is the zero-trust, identity-aware reverse proxy. This
// package only parses flags and wires: every subcommand calls into a package.
//
// Exit codes: 0 success; 1 the command ran and found a failure (invalid
// config, failing policy test, tampered audit log, changed replay decision);
// 2 usage error (unknown command or flag).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// command is one subcommand. Each lives in its own file and registers itself
// in init, so subcommands are added without touching this file.
type command struct {
	name    string // "serve", "policy test", "audit verify"
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// exitUsage is returned for bad flags or an unknown command.
const exitUsage = 2

// errUsage marks usage errors from flag parsing.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	// Longest match first: "policy test" before "policy".
	for n := min(2, len(args)); n >= 1; n-- {
		name := strings.Join(args[:n], " ")
		if c, ok := commands[name]; ok {
			return c.run(ctx, args[n:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: gatehouse COMMAND [flags]   (gatehouse COMMAND --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-18s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nExit codes: 0 ok, 1 failure found (invalid config, failed test, tampering), 2 usage error.")
}

func init() {
	register(command{name: "version", summary: "print the version", run: func(_ context.Context, _ []string, stdout, _ io.Writer) int {
		fmt.Fprintf(stdout, "gatehouse %s\n", version)
		return 0
	}})
}
