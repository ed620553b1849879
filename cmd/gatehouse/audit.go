package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/audit/report"
)

// The audit subcommands: verify, prove, check-proof, report, search, shred
// (and backup, audit_backup.go).
// Each parses flags and calls into package audit.

func init() {
	register(command{name: "audit verify", summary: "check an audit log: records, Merkle tree, signed checkpoints", run: runAuditVerify})
	register(command{name: "audit prove", summary: "print an inclusion (--index) or consistency (--consistency) proof", run: runAuditProve})
	register(command{name: "audit check-proof", summary: "check a proof file offline with the public key", run: runAuditCheckProof})
	register(command{name: "audit report", summary: "compliance report (html, csv, json), verified first", run: runAuditReport})
	register(command{name: "audit search", summary: "find records by user, time, route, decision", run: runAuditSearch})
	register(command{name: "audit shred", summary: "destroy the data keys of periods ended before a date", run: runAuditShred})
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseArgs parses flags that may come before or after positional args.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: gatehouse %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nExit codes: 0 ok; 1 the log or proof failed a check (or a command failed); 2 usage error.")
	}
	return fs
}

// loadVerifiers reads --key files (verifier keys, one per line allowed).
func loadVerifiers(paths []string) ([]note.Verifier, error) {
	var vs []note.Verifier
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", p, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line == "" {
				continue
			}
			v, err := audit.ParseVerifierKey(line)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", p, err)
			}
			vs = append(vs, v)
		}
	}
	return vs, nil
}

// dirVerifiers returns every --key, or every key the log's own key.pub
// lists (untrusted; after a key change it holds the new key and the old
// ones, so checkpoints of both can be proved against).
func dirVerifiers(dir string, keys []string, stderr io.Writer) ([]note.Verifier, error) {
	vs, err := loadVerifiers(keys)
	if err != nil {
		return nil, err
	}
	if len(vs) > 0 {
		return vs, nil
	}
	fmt.Fprintf(stderr, "warning: no --key given: using %s, which is only as trustworthy as the log directory itself\n", filepath.Join(dir, "key.pub"))
	vs, err = loadVerifiers([]string{filepath.Join(dir, "key.pub")})
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("no key in %s", filepath.Join(dir, "key.pub"))
	}
	return vs, nil
}

func runAuditVerify(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit verify", stderr, "audit verify DIR... [--key PUB]... [--checkpoint TRUSTED]...")
	var keys, trusted multiFlag
	fs.Var(&keys, "key", "trusted verifier key file (note format; repeat for rotated keys)")
	fs.Var(&trusted, "checkpoint", "trusted signed checkpoint kept elsewhere (e.g. the published copy); repeatable")
	maxUnsigned := fs.Int64("max-unsigned", 0, "fail when more records than this follow the latest checkpoint (0: any number; a log is never without a checkpoint)")
	maxAge := fs.Duration("max-unsigned-age", audit.DefaultMaxUnsignedAge, "fail when records run on longer than this after the latest checkpoint (the writer signs one every checkpoint_interval; 0: no bound)")
	dirs, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(dirs) == 0 {
		fs.Usage()
		return exitUsage
	}
	vs, err := loadVerifiers(keys)
	if err != nil {
		fmt.Fprintf(stderr, "audit verify: %v\n", err)
		return exitUsage
	}
	var cps [][]byte
	for _, p := range trusted {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(stderr, "audit verify: read trusted checkpoint: %v\n", err)
			return exitUsage
		}
		cps = append(cps, b)
	}
	code := 0
	for _, dir := range dirs {
		sum, err := audit.Verify(dir, audit.VerifyOptions{Verifiers: vs, Trusted: cps, MaxUnsigned: *maxUnsigned, MaxUnsignedAge: *maxAge})
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", dir, err)
			code = 1
			continue
		}
		printSummary(stdout, dir, sum)
	}
	return code
}

func printSummary(w io.Writer, dir string, s *audit.Summary) {
	fmt.Fprintf(w, "OK %s: %d records in %d segments", dir, s.Records, s.Segments)
	if s.Records > 0 {
		fmt.Fprintf(w, ", %s .. %s", s.First.UTC().Format(time.RFC3339Nano), s.Last.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(w, "\n  %d checkpoints; latest: size %d, root %s, origin %s, time %s\n", s.Checkpoints, s.Latest.Size,
		s.Latest.Root, s.Latest.Origin, s.Latest.Time.UTC().Format(time.RFC3339))
	if s.Unsigned > 0 {
		fmt.Fprintf(w, "  %d records after the latest checkpoint are NOT covered by a signed checkpoint (not verified", s.Unsigned)
		switch {
		case s.UnsignedHashed == s.Unsigned:
			fmt.Fprintf(w, "; they match the stored hashes file, which is not signed)\n")
		case s.UnsignedHashed > 0:
			fmt.Fprintf(w, "; %d of them match the stored hashes file, which is not signed, %d have no stored hash)\n", s.UnsignedHashed, s.Unsigned-s.UnsignedHashed)
		default:
			fmt.Fprintf(w, "; no stored hashes to compare them with)\n")
		}
	}
	if s.Trusted > 0 {
		fmt.Fprintf(w, "  %d trusted checkpoint(s) contained in the log\n", s.Trusted)
	}
	fmt.Fprintf(w, "  keys: %s\n", strings.Join(s.Keys, ", "))
	if s.KeyFromLog {
		fmt.Fprintf(w, "  WARNING: no --key given: signatures were checked with %s from the log directory, which is UNTRUSTED\n"+
			"  (whoever can rewrite the log can rewrite it). Pass the published key with --key, and --checkpoint the published checkpoint.\n",
			filepath.Join(dir, "key.pub"))
	}
}

func runAuditProve(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit prove", stderr, "audit prove DIR --index N [--latest] | --consistency OLD [--to NEW]  [--key PUB]... [--out FILE]")
	var keys multiFlag
	fs.Var(&keys, "key", "verifier key file (repeat for rotated keys; default: every key of the log's key.pub)")
	index := fs.Int64("index", -1, "record index to prove")
	latest := fs.Bool("latest", false, "prove against the latest checkpoint (default: the first that covers the record)")
	cons := fs.Int64("consistency", -1, "size of the older checkpoint for a consistency proof")
	to := fs.Int64("to", 0, "size of the newer checkpoint (default: the latest)")
	out := fs.String("out", "", "write the proof to FILE (default: stdout)")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(pos) != 1 || (*index < 0) == (*cons < 0) {
		fs.Usage()
		return exitUsage
	}
	dir := pos[0]
	vs, err := dirVerifiers(dir, keys, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "audit prove: %v\n", err)
		return 1
	}
	var p *audit.Proof
	if *index >= 0 {
		p, err = audit.ProveInclusion(dir, *index, vs, *latest)
	} else {
		p, err = audit.ProveConsistency(dir, *cons, *to, vs)
	}
	if err != nil {
		fmt.Fprintf(stderr, "audit prove: %v\n", err)
		return 1
	}
	if *out != "" {
		if err := os.WriteFile(*out, p.Marshal(), 0o644); err != nil {
			fmt.Fprintf(stderr, "audit prove: %v\n", err)
			return 1
		}
		return 0
	}
	stdout.Write(p.Marshal())
	return 0
}

func runAuditCheckProof(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit check-proof", stderr, "audit check-proof FILE --key PUB")
	var keys multiFlag
	fs.Var(&keys, "key", "trusted verifier key file (required)")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(pos) != 1 || len(keys) == 0 {
		fs.Usage()
		return exitUsage
	}
	vs, err := loadVerifiers(keys)
	if err != nil {
		fmt.Fprintf(stderr, "audit check-proof: %v\n", err)
		return exitUsage
	}
	var data []byte
	if pos[0] == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, 16<<20))
	} else {
		data, err = os.ReadFile(pos[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "audit check-proof: %v\n", err)
		return exitUsage
	}
	res, err := audit.CheckProof(data, vs)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL: %v\n", err)
		return 1
	}
	cp := res.Checkpoint
	switch res.Type {
	case audit.ProofInclusion:
		fmt.Fprintf(stdout, "OK: record %d (%s, %s) is in log %s at checkpoint size %d, root %s\n", res.Record.Index,
			res.Record.Type, res.Record.Time.UTC().Format(time.RFC3339Nano), cp.Origin, cp.Size, cp.Root)
	default:
		fmt.Fprintf(stdout, "OK: checkpoint size %d (root %s) extends checkpoint size %d (root %s) of log %s\n",
			cp.Size, cp.Root, res.Old.Size, res.Old.Root, cp.Origin)
	}
	return 0
}

// parseTime accepts RFC 3339, "2006-01-02", "2006-01-02T15:04" (in loc)
// "now", or a negative duration relative to now ("-24h").
func parseTime(s string, loc *time.Location, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if s == "now" {
		return now, nil
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s); err == nil {
			return now.Add(d), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad time %q (RFC 3339, YYYY-MM-DD, or -24h)", s)
}

func loadRing(dir, keyFile string) (*audit.Keyring, error) {
	if keyFile == "" {
		return nil, nil
	}
	k, err := audit.LoadEncryptionKey(keyFile)
	if err != nil {
		return nil, err
	}
	return audit.NewKeyring(dir, k)
}

// searchDirs returns the records of dirs matching f, with sealed fields
// opened where possible. An email user also matches the subjects seen with
// that email, so records that carry only the subject are included. Records
// whose sealed fields could not be opened for a reason other than
// shredding are named on stderr (the first few, then a count).
func searchDirs(dirs []string, encKey string, f audit.Filter, stderr io.Writer) ([]*audit.Record, error) {
	var all []*audit.Record
	for _, dir := range dirs {
		ring, err := loadRing(dir, encKey)
		if err != nil {
			return nil, err
		}
		user := f.User
		f2 := f
		f2.User = ""
		recs, err := audit.Search(dir, ring, f2)
		if err != nil {
			return nil, err
		}
		subjects := map[string]bool{user: true}
		for _, r := range recs {
			if user != "" && strings.EqualFold(r.Email, user) && r.Subject != "" {
				subjects[r.Subject] = true
			}
		}
		unreadable := 0
		for _, r := range recs {
			if user == "" || subjects[r.Subject] || strings.EqualFold(r.Email, user) {
				all = append(all, r)
				if r.Unreadable != nil && !errors.Is(r.Unreadable, audit.ErrShredded) {
					if unreadable++; unreadable <= maxUnreadableShown {
						fmt.Fprintf(stderr, "warning: %s: record %d: personal fields unreadable: %v\n", dir, r.Index, r.Unreadable)
					}
				}
			}
		}
		if unreadable > 0 {
			fmt.Fprintf(stderr, "warning: %s: %d record(s) with unreadable personal fields (kept sealed; not shredded)\n", dir, unreadable)
		}
	}
	return all, nil
}

// maxUnreadableShown bounds the records searchDirs names one by one.
const maxUnreadableShown = 5

func runAuditReport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit report", stderr, "audit report DIR... --from T --to T [--user U] [--format html|csv|json] [--out FILE]")
	var keys multiFlag
	fs.Var(&keys, "key", "trusted verifier key file (default: the log's key.pub, flagged as untrusted)")
	from := fs.String("from", "", "start of the period (RFC 3339, YYYY-MM-DD or -24h)")
	to := fs.String("to", "", "end of the period, exclusive (default: everything up to now and any later record)")
	user := fs.String("user", "", "data-subject report: every record about this subject or email")
	format := fs.String("format", "html", "html, csv or json")
	out := fs.String("out", "", "write to FILE (default: stdout)")
	encKey := fs.String("encryption-key", "", "encryption_key_file, to show sealed personal fields")
	unverified := fs.Bool("unverified", false, "report on a log that fails verification (the report says so)")
	maxAge := fs.Duration("max-unsigned-age", audit.DefaultMaxUnsignedAge, "as for audit verify: fail when records run on longer than this after the latest checkpoint (0: no bound)")
	tz := fs.String("timezone", "UTC", "time zone for display and for dates without an offset")
	dirs, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(dirs) == 0 {
		fs.Usage()
		return exitUsage
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		fmt.Fprintf(stderr, "audit report: %v\n", err)
		return exitUsage
	}
	now := time.Now()
	fromT, err1 := parseTime(*from, loc, now)
	toT, err2 := parseTime(*to, loc, now)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(stderr, "audit report: %v\n", err)
		return exitUsage
	}
	vs, err := loadVerifiers(keys)
	if err != nil {
		fmt.Fprintf(stderr, "audit report: %v\n", err)
		return exitUsage
	}
	integ := report.Integrity{Verified: true}
	var roots, origins []string
	for _, dir := range dirs {
		sum, err := audit.Verify(dir, audit.VerifyOptions{Verifiers: vs, MaxUnsignedAge: *maxAge})
		if err != nil {
			if !*unverified {
				fmt.Fprintf(stderr, "audit report: %s does not verify, refusing (--unverified to report anyway): %v\n", dir, err)
				return 1
			}
			integ.Verified = false
			integ.Problem = strings.TrimSpace(integ.Problem + " " + dir + ": " + err.Error())
			continue
		}
		integ.Records += sum.Records
		integ.Checkpoint += sum.Latest.Size
		integ.Unsigned += sum.Unsigned
		integ.KeyFromLog = integ.KeyFromLog || sum.KeyFromLog
		roots = append(roots, sum.Latest.Root.String())
		origins = append(origins, sum.Latest.Origin)
	}
	integ.Root, integ.Origin = strings.Join(roots, ", "), strings.Join(origins, ", ")
	recs, err := searchDirs(dirs, *encKey, audit.Filter{From: fromT, To: toT, User: *user}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "audit report: %v\n", err)
		return 1
	}
	if toT.IsZero() {
		// No --to: up to now, or to the last record if the clock that
		// wrote them ran ahead of this one.
		toT = now
		if n := len(recs); n > 0 && recs[n-1].Time.After(toT) {
			toT = recs[n-1].Time.Add(time.Nanosecond)
		}
	}
	if fromT.IsZero() && len(recs) > 0 {
		fromT = recs[0].Time
	}
	rep := report.Build(recs, integ, report.Options{From: fromT, To: toT, User: *user, Generated: now, Location: loc})
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "audit report: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	if err := report.Render(bw, rep, *format); err != nil {
		fmt.Fprintf(stderr, "audit report: %v\n", err)
		return exitUsage
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintf(stderr, "audit report: %v\n", err)
		return 1
	}
	return 0
}

func runAuditSearch(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit search", stderr, "audit search DIR... [--user U] [--from T] [--to T] [--route R] [--decision allow|deny|step_up] [--type T]")
	user := fs.String("user", "", "subject or email")
	from := fs.String("from", "", "start (RFC 3339, YYYY-MM-DD or -24h)")
	to := fs.String("to", "", "end, exclusive")
	route := fs.String("route", "", "route name")
	decision := fs.String("decision", "", "decision outcome: allow, deny or step_up")
	var types multiFlag
	fs.Var(&types, "type", "record type (repeatable)")
	encKey := fs.String("encryption-key", "", "encryption_key_file, to open sealed personal fields")
	tz := fs.String("timezone", "UTC", "time zone for dates without an offset")
	dirs, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(dirs) == 0 {
		fs.Usage()
		return exitUsage
	}
	loc, err := time.LoadLocation(*tz)
	if err != nil {
		fmt.Fprintf(stderr, "audit search: %v\n", err)
		return exitUsage
	}
	switch *decision {
	case "", audit.OutcomeAllow, audit.OutcomeDeny, audit.OutcomeStepUp:
	default:
		fmt.Fprintf(stderr, "audit search: --decision must be allow, deny or step_up\n")
		return exitUsage
	}
	now := time.Now()
	fromT, err1 := parseTime(*from, loc, now)
	toT, err2 := parseTime(*to, loc, now)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(stderr, "audit search: %v\n", err)
		return exitUsage
	}
	f := audit.Filter{From: fromT, To: toT, User: *user, Route: *route, Outcome: *decision}
	for _, t := range types {
		if !audit.Type(t).Known() {
			fmt.Fprintf(stderr, "audit search: unknown record type %q\n", t)
			return exitUsage
		}
		f.Types = append(f.Types, audit.Type(t))
	}
	recs, err := searchDirs(dirs, *encKey, f, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "audit search: %v\n", err)
		return 1
	}
	bw := bufio.NewWriter(stdout)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, r := range recs {
		enc.Encode(r)
	}
	bw.Flush()
	fmt.Fprintf(stderr, "%d records\n", len(recs))
	return 0
}

func runAuditShred(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit shred", stderr, "audit shred DIR --before DATE")
	before := fs.String("before", "", "destroy data keys of periods (months) that ended on or before this date")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(pos) != 1 || *before == "" {
		fs.Usage()
		return exitUsage
	}
	t, err := parseTime(*before, time.UTC, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "audit shred: %v\n", err)
		return exitUsage
	}
	done, err := audit.Shred(pos[0], t)
	if err != nil {
		fmt.Fprintf(stderr, "audit shred: %v\n", err)
		return 1
	}
	if len(done) == 0 {
		fmt.Fprintf(stdout, "nothing to shred before %s\n", t.UTC().Format(time.RFC3339))
		return 0
	}
	fmt.Fprintf(stdout, "shredded %d period(s): %s (records stay verifiable; their personal fields are gone)\n", len(done), strings.Join(done, ", "))
	return 0
}
