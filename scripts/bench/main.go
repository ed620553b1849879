// Command bench compares Gatehouse with a bare httputil.ReverseProxy on the
// same upstream, side by side in one run (`make bench`). Each row starts
// Gatehouse with one configuration; rounds alternate bare / Gatehouse so
// that machine noise hits both alike. It prints a table (req/s, p50, p99,
// server CPU per request, ratios) and, last, the line
// `ratio_rps=<x> ratio_p99=<y>` for the first row.
//
// Ratios are the only figures that mean anything on a shared 2-core machine:
// never compare absolute numbers across runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	_ "net/http/pprof" // the bare proxy's profile, with BENCH_BARE_PPROF=addr
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare-proxy" {
		bareProxy(os.Args[2:])
		return
	}
	gatehouse := flag.String("gatehouse", "bin/gatehouse", "the gatehouse binary")
	rowsFlag := flag.String("rows", "", "comma-separated rows to run (default: all)")
	round := flag.Duration("round", 3*time.Second, "length of one measured round")
	rounds := flag.Int("rounds", 2, "rounds per server per row (alternating)")
	conc := flag.Int("c", 32, "concurrent clients")
	h2 := flag.Bool("h2", false, "HTTP/2 between client and proxies")
	keep := flag.Bool("keep", false, "keep the rows' directories (configs, logs, audit logs)")
	flag.StringVar(&loadProfileDir, "loadprofile", "", "write CPU profiles of this process (load and upstream) per row and server into `dir`")
	calibrate := flag.String("calibrate", "", "comma-separated extras for the bare proxy, each a row against the plain bare proxy: a CPU cost (5us: that much pure computation per request) `headers` (the identity headers and signed assertion Gatehouse sends upstream, as constants) `mandated` (those headers, a memoised cookbook decision and two signed audit records per request, through Gatehouse's packages without its pipeline) or `mandated-redis` (that and the anomaly detector on Redis)")
	flag.Parse()
	burns, err := parseBurns(*calibrate)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: -calibrate:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *gatehouse, *rowsFlag, burns, *round, *rounds, *conc, *h2, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, gh, rowsFlag string, burns []string, round time.Duration, rounds, conc int, h2, keep bool) error {
	gh, err := filepath.Abs(gh)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "bench: keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	env, err := newEnv(ctx, dir)
	if err != nil {
		return err
	}
	defer env.close()

	bare, barePID, err := startBare(ctx, env, env.barePort, "0s", "")
	if err != nil {
		return fmt.Errorf("bare proxy: %w", err)
	}
	defer bare()

	selected := rows
	if rowsFlag == "" && len(burns) > 0 {
		selected = nil // -calibrate alone: only the calibration rows
	}
	if rowsFlag != "" {
		selected = nil
		for _, name := range strings.Split(rowsFlag, ",") {
			r, ok := rowByName(name)
			if !ok {
				return fmt.Errorf("unknown row %q", name)
			}
			selected = append(selected, r)
		}
	}
	client := newClient(env.caPEM, conc, h2)
	const format = rowFormat
	fmt.Printf(format, "row", "bare req/s", "gh req/s", "bare p50", "gh p50", "bare p99", "gh p99",
		"bare cpu/req", "gh cpu/req", "load cpu/req", "ratio_rps", "ratio_p99", "errors")
	var first string
	for _, r := range selected {
		inst, err := startGatehouse(ctx, gh, env, r)
		if err != nil {
			return fmt.Errorf("row %s: %w", r.name, err)
		}
		// The same requests to both (a row's session cookie too): what a
		// client sends is load, not Gatehouse's cost.
		bt := target{url: "https://app.localhost:" + env.barePort + r.path, headers: inst.headers, pid: barePID}
		gt := target{url: "https://app.localhost:" + inst.port + r.path, headers: inst.headers, pid: inst.pid}
		settle()
		b, g := compare(ctx, client, r.name, bt, gt, conc, round, rounds)
		inst.stop()
		rr, rp := printRow(format, r.name, b, g)
		if g.requests == 0 {
			return fmt.Errorf("row %s: gatehouse answered no request with 200 (%d errors): see %s", r.name, g.errors, inst.logPath)
		}
		if first == "" {
			first = fmt.Sprintf("ratio_rps=%.3f ratio_p99=%.3f", rr, rp)
		}
	}
	// Calibration: the bare proxy against itself plus a known amount of
	// pure computation per request. It shows what a ratio target leaves a
	// proxy on this machine, where the load side shares the cores.
	for _, d := range burns {
		port, err := freePort()
		if err != nil {
			return err
		}
		redisAddr, stopRedis := "", func() {}
		if d == extraMandatedRedis {
			rdir := filepath.Join(env.dir, "redis-"+port)
			if err := os.MkdirAll(rdir, 0o700); err != nil {
				return err
			}
			if redisAddr, stopRedis, err = startRedis(ctx, rdir); err != nil {
				return err
			}
		}
		stopBurn, burnPID, err := startBare(ctx, env, port, d, redisAddr)
		if err != nil {
			stopRedis()
			return fmt.Errorf("bare proxy +%v: %w", d, err)
		}
		name := "bare+" + d
		bt := target{url: "https://app.localhost:" + env.barePort + "/", pid: barePID}
		gt := target{url: "https://app.localhost:" + port + "/", pid: burnPID}
		settle()
		b, g := compare(ctx, client, name, bt, gt, conc, round, rounds)
		stopBurn()
		stopRedis()
		rr, rp := printRow(format, name, b, g)
		if first == "" {
			first = fmt.Sprintf("ratio_rps=%.3f ratio_p99=%.3f", rr, rp)
		}
	}
	fmt.Println(first)
	return nil
}

// rowFormat is the table's fixed-width line: a row is printed as soon as
// it is measured.
const rowFormat = "%-15s %10s %9s %9s %9s %9s %9s %12s %10s %14s %9s %9s %7s\n"

// compare warms both targets (connections, caches), then alternates
// rounds so that machine noise hits both alike.
func compare(ctx context.Context, client *http.Client, name string, bt, gt target, conc int, round time.Duration, rounds int) (b, g result) {
	drive(ctx, client, bt, conc, 500*time.Millisecond)
	drive(ctx, client, gt, conc, 500*time.Millisecond)
	for i := 0; i < rounds; i++ {
		b = merge(b, profiled(name+"-bare", i, func() result { return drive(ctx, client, bt, conc, round) }))
		g = merge(g, profiled(name+"-gatehouse", i, func() result { return drive(ctx, client, gt, conc, round) }))
	}
	return b, g
}

// printRow prints one measured row and returns its ratios.
func printRow(format, name string, b, g result) (rr, rp float64) {
	rr = g.rps() / b.rps()
	rp = float64(g.pct(0.99)) / float64(b.pct(0.99))
	fmt.Printf(format, name, fmt.Sprintf("%.0f", b.rps()), fmt.Sprintf("%.0f", g.rps()),
		rnd(b.pct(.5)), rnd(g.pct(.5)), rnd(b.pct(.99)), rnd(g.pct(.99)), rnd(b.cpuPerReq()), rnd(g.cpuPerReq()),
		fmt.Sprintf("%v/%v", rnd(b.loadPerReq()), rnd(g.loadPerReq())), fmt.Sprintf("%.3f", rr), fmt.Sprintf("%.3f", rp),
		fmt.Sprintf("%d/%d", b.errors, g.errors))
	return rr, rp
}

// parseBurns reads -calibrate: each entry is `headers` or a duration,
// returned in the form the bare proxy's last argument takes.
func parseBurns(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if f == extraHeaders || f == extraMandated || f == extraMandatedRedis {
			out = append(out, f)
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 || d > 10*time.Millisecond {
			return nil, fmt.Errorf("%q is neither %s, %s, %s nor a duration between 0 and 10ms", f, extraHeaders, extraMandated, extraMandatedRedis)
		}
		out = append(out, d.String())
	}
	return out, nil
}

// loadProfileDir is -loadprofile.
var loadProfileDir string

// profiled runs the first round of f under a CPU profile of this process
// when -loadprofile is set: it shows what the load side spends, which the
// two servers share.
func profiled(name string, round int, f func() result) result {
	if loadProfileDir == "" || round != 0 {
		return f()
	}
	out, err := os.Create(filepath.Join(loadProfileDir, name+".prof"))
	if err != nil {
		log.Printf("loadprofile: %v", err)
		return f()
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		log.Printf("loadprofile: %v", err)
		return f()
	}
	defer pprof.StopCPUProfile()
	return f()
}

func rnd(d time.Duration) time.Duration { return d.Round(time.Microsecond) }

func merge(a, b result) result {
	a.requests += b.requests
	a.errors += b.errors
	a.elapsed += b.elapsed
	a.cpu += b.cpu
	a.load += b.load
	a.lat = append(a.lat, b.lat...)
	sortDurations(a.lat)
	return a
}

// startBare runs the bare reverse proxy as its own process, so its CPU time
// is measured the same way as Gatehouse's.
// extra is "0s", a duration of pure computation to add to every request,
// extraHeaders or extraMandated (calibration).
func startBare(ctx context.Context, env *env, port, extra, redisAddr string) (func(), int, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.CommandContext(ctx, self, "bare-proxy", "127.0.0.1:"+port, env.upstream, env.certFile, env.keyFile, extra)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// The mandated row's audit log lives in the run's directory (removed
	// with it: the bare proxy is killed, it cleans nothing up itself).
	cmd.Env = append(os.Environ(), "BENCH_DIR="+filepath.Join(env.dir, "bare-"+port), "BENCH_ROOT="+env.root, "BENCH_REDIS="+redisAddr)
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	if err := waitTCP(ctx, "127.0.0.1:"+port); err != nil {
		_ = cmd.Process.Kill()
		return nil, 0, err
	}
	return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, cmd.Process.Pid, nil
}

// bareProxy is the baseline: httputil.ReverseProxy with a transport that
// keeps enough idle connections (Go's default of 2 per host costs a third
// of the throughput), a buffer pool, and the same TLS certificate.
func bareProxy(args []string) {
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: bench bare-proxy LISTEN UPSTREAM CERT KEY EXTRA")
		os.Exit(2)
	}
	var burn time.Duration
	var m *mandated
	headers := args[4] == extraHeaders || args[4] == extraMandated || args[4] == extraMandatedRedis
	if args[4] == extraMandated || args[4] == extraMandatedRedis {
		var err error
		if args[4] == extraMandated {
			m, err = newMandated(context.Background(), os.Getenv("BENCH_DIR"), os.Getenv("BENCH_ROOT"))
		} else {
			m, err = newMandatedRedis(context.Background(), os.Getenv("BENCH_DIR"), os.Getenv("BENCH_ROOT"), os.Getenv("BENCH_REDIS"))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "mandated:", err)
			os.Exit(1)
		}
	}
	if !headers {
		var err error
		if burn, err = time.ParseDuration(args[4]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	u, err := url.Parse(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			if headers {
				addIdentityHeaders(pr.Out.Header)
			}
		},
		Transport:  &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute},
		BufferPool: newBufferPool(),
		// Cancelled requests at the end of a round are expected.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	if addr := os.Getenv("BENCH_BARE_PPROF"); addr != "" {
		// Profiling the baseline the same way as Gatehouse's admin API;
		// BENCH_BARE_PPROF_EXTRA=mandated profiles that calibration row's
		// proxy instead.
		if want := os.Getenv("BENCH_BARE_PPROF_EXTRA"); want == "" && args[4] == "0s" || want == args[4] {
			go func() { _ = http.ListenAndServe(addr, nil) }()
		}
	}
	var h http.Handler = rp
	if burn > 0 {
		h = burner(burn, rp)
	}
	if m != nil {
		h = m.wrap(rp)
	}
	srv := &http.Server{Addr: args[0], Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServeTLS(args[2], args[3]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func waitTCP(ctx context.Context, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not start listening within 60s", addr)
}

// upstreamHandler is the app behind both proxies: a small HTML-sized body.
func upstreamHandler() http.Handler {
	body := []byte(strings.Repeat("gatehouse benchmark body ", 40)) // 1000 bytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(body)
	})
}
