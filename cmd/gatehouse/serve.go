package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

func init() {
	register(command{name: "serve", summary: "run the proxy", run: runServe})
}

const serveUsage = `Usage: gatehouse serve [--config gatehouse.yaml] [--watch=true]

Runs the proxy: HTTPS on listen, the optional HTTP redirect (and ACME
challenges) on http_listen, health, readiness, metrics and the admin API on
admin_listen.

Signals: SIGHUP reloads the config (a broken one is logged with file:line
and the previous config keeps serving); SIGTERM or SIGINT drains in-flight
requests for up to timeouts.shutdown, then exits.

Exit codes: 0 after a clean shutdown; 1 the config is invalid or the server
failed; 2 usage error.

Flags:
`

// serveFlags parses the flags shared by serve-like commands. help is true
// when --help was asked for (usage already printed to stdout).
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout, stderr io.Writer) (help bool, code int) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// The flag package printed the usage already, to fs.Output()
			// (stdout when run saw --help).
			return true, 0
		}
		return true, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse %s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return true, exitUsage
	}
	return false, 0
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "gatehouse.yaml", "the config file")
	watch := fs.Bool("watch", true, "also reload when the config file changes")
	if stop, code := parseFlags(fs, serveUsage, args, stdout, stderr); stop {
		return code
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	log, err := proxy.NewLogger(cfg.Log)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse serve: %v\n", err)
		return 1
	}
	defer func() { _ = log.Sync() }()
	if err := serve(ctx, cfg, log, *watch); err != nil {
		log.Error("gatehouse stopped", zap.Error(err))
		fmt.Fprintf(stderr, "gatehouse serve: %v\n", err)
		return 1
	}
	return 0
}

// serve builds and runs the server until ctx ends.
func serve(ctx context.Context, cfg *config.Config, log *zap.Logger, watch bool) error {
	return serveInZone(ctx, cfg, log, watch, nil)
}

// serveInZone is serve with the time of day judged in zone instead of
// anomaly.timezone (`demo --at`); nil means anomaly.timezone.
func serveInZone(ctx context.Context, cfg *config.Config, log *zap.Logger, watch bool, zone *time.Location) error {
	certs, err := newTLSCertSource(ctx, cfg, log.Named("certs"), nil)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	defer certs.Close()
	srv, err := proxy.New(ctx, cfg, proxy.Options{Logger: log, Certs: certs, Version: version, Zone: zone})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnSignal(ctx, srv, hup)
	if watch {
		go func() {
			if err := srv.WatchConfig(ctx); err != nil {
				log.Warn("not watching the config file; SIGHUP still reloads", zap.Error(err))
			}
		}()
	}
	return srv.Run(ctx)
}

// reloader is what the signal loop needs of the server.
type reloader interface {
	Reload(ctx context.Context) (int64, error)
}

// reloadOnSignal reloads the config on every signal until ctx ends. The
// server logs and counts failures itself; the old config keeps serving.
func reloadOnSignal(ctx context.Context, srv reloader, sig <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			_, _ = srv.Reload(ctx)
		}
	}
}

// printConfigErrors prints one "file:line: field: message" per problem.
func printConfigErrors(w io.Writer, err error) {
	var fes config.Errors
	if errors.As(err, &fes) {
		for _, fe := range fes {
			fmt.Fprintln(w, fe.Error())
		}
		return
	}
	for _, e := range flatten(err) {
		fmt.Fprintln(w, e.Error())
	}
}

// flatten lists the leaves of joined errors.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
