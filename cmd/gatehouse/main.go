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

// errUsage marks usage errors from flag parsing; errHelp a --help request
// (usage already printed, exit 0).
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

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
			if wantsHelp(args[n:]) {
				// Help is the answer asked for: to stdout, exit 0.
				stderr = stdout
			}
			return c.run(ctx, args[n:], stdout, stderr)
		}
	}
	// A command group ("gatehouse audit --help"): list its subcommands.
	if group := groupCommands(args[0]); len(group) > 0 {
		w, code := stderr, exitUsage
		if len(args) == 1 || wantsHelp(args[1:]) {
			w, code = stdout, 0
		}
		fmt.Fprintf(w, "Usage: gatehouse %s SUBCOMMAND [flags]\n\nSubcommands:\n", args[0])
		for _, c := range group {
			fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
		}
		if code != 0 {
			fmt.Fprintf(w, "\ngatehouse: unknown subcommand %q\n", strings.Join(args, " "))
		}
		return code
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
	usage(stderr)
	return exitUsage
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// groupCommands lists the subcommands of a group name such as "audit".
func groupCommands(group string) []command {
	var out []command
	for name, c := range commands {
		if strings.HasPrefix(name, group+" ") {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
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
	register(command{name: "version", summary: "print the version", run: func(_ context.Context, args []string, stdout, stderr io.Writer) int {
		if wantsHelp(args) {
			fmt.Fprintln(stdout, "Usage: gatehouse version\n\nPrints the version. Exit codes: 0.")
			return 0
		}
		if len(args) > 0 {
			fmt.Fprintf(stderr, "gatehouse version: unexpected arguments %q\n", args)
			return exitUsage
		}
		fmt.Fprintf(stdout, "gatehouse %s\n", version)
		return 0
	}})
}
