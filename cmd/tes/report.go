package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/outbox"
	"github.com/tes-traffic/tes/internal/pins"
	"github.com/tes-traffic/tes/internal/tes1"
	"github.com/tes-traffic/tes/internal/tlssuite"
)

// defaultPinsFile is where clients pin server keys: $TES_PINS, else
// ~/.config/tes/known_servers.
func defaultPinsFile(env *Env) string {
	if v := env.Getenv("TES_PINS"); v != "" {
		return v
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "tes", "known_servers")
}

func runReport(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "report", "--server HOST:PORT --user NAME (--plate P --speed N | --csv FILE) [--outbox DIR]")
	server := fs.String("server", envOr(env, "TES_SERVER", "127.0.0.1:9999"), "officer server's TES/1 address (env TES_SERVER)")
	user := fs.String("user", env.Getenv("TES_USER"), "user to log in as, a police or admin account (env TES_USER)")
	pw := addPasswordFlag(fs)
	pinsFile := fs.String("pins", defaultPinsFile(env), "known-servers file: the server key is pinned on first use (env TES_PINS)")
	plate := fs.String("plate", "", "licence plate")
	speed := fs.String("speed", "", "measured speed in km/h")
	limit := fs.Int("speed-limit", 0, "speed limit at the location in km/h (optional)")
	location := fs.String("location", "", "where it was observed (optional)")
	observed := fs.String("observed-at", "", "when it was observed, RFC 3339 (optional; default now)")
	csvFile := fs.String("csv", "", "send every row of this CSV file (- for stdin) over one session; columns plate,speed[,speed_limit,location,observed_at,report_id]")
	timeout := fs.Duration("timeout", 30*time.Second, "time limit for each request")
	window := fs.Int("window", 1, "TES/1 --csv: reports sent before waiting for their replies (up to 64); a TES officer commits them together, the original Python server needs 1")
	outboxDir := fs.String("outbox", env.Getenv("TES_OUTBOX"), "store-and-forward: commit the reports to the outbox in this directory first, then send everything queued there; what cannot be sent stays queued for a later run (exit 75) (env TES_OUTBOX)")
	tf := addTLSFlags(fs, env) // --join, --tls, --tls-server, --device, --allow-legacy (device.go)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" && !tf.wanted(*server) {
		return exitError{2, "--user is required (a police or admin account)"}
	}
	var reports []*tes.Report
	var lines []int
	switch {
	case *csvFile != "" && (*plate != "" || *speed != ""):
		return exitError{2, "use either --csv or --plate/--speed, not both"}
	case *csvFile != "":
		var r io.Reader = env.Stdin
		if *csvFile != "-" {
			f, err := os.Open(*csvFile)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		var err error
		if reports, lines, err = ReadCSV(r); err != nil {
			return exitError{2, err.Error()}
		}
		if len(reports) == 0 {
			return exitError{2, "the CSV file holds no reports"}
		}
	default:
		if *plate == "" || *speed == "" {
			return exitError{2, "--plate and --speed are required (or --csv FILE)"}
		}
		r, err := buildReport(*plate, *speed, strconv.Itoa(*limit), *location, *observed, "")
		if err != nil {
			return exitError{2, userMessage(err)}
		}
		reports, lines = []*tes.Report{r}, []int{0}
	}
	if *outboxDir != "" {
		return reportViaOutbox(ctx, env, tf, pw, *outboxDir, *server, *user, *pinsFile, *timeout, reports, lines)
	}
	if c, err := tf.dial(ctx, env, *server, *user, *timeout); err != nil {
		return err
	} else if c != nil {
		return sendTLS(ctx, env, c, reports, lines)
	}
	password, err := pw.read(env, "Password for "+*user+": ")
	if err != nil {
		return err
	}
	s := &sender{server: *server, user: *user, password: password, timeout: *timeout,
		pins: pins.Open(*pinsFile), env: env, window: max(1, min(*window, tes1.MaxPipeline))}
	defer s.close()
	t := &tally{env: env, lines: lines, total: len(reports)}
	// Reports go in chunks, each sent with up to --window unanswered (the
	// server commits them together) and its replies read in order; with the
	// default window of 1 every report is a plain request-reply, which the
	// original server needs.
chunks:
	for start := 0; start < len(reports); start += reportChunk {
		chunk := reports[start:min(len(reports), start+reportChunk)]
		for j, err := range s.sendAll(ctx, chunk) {
			i, r := start+j, chunk[j]
			if err == nil {
				t.ok(i, r, "")
				continue
			}
			t.fail(i, r, err)
			if pins.IsChanged(err) || isFatalLogin(err) {
				t.giveUp(i)
				break chunks
			}
		}
	}
	return t.result()
}

// tally prints what became of each report of a tes report run and counts
// the ones not acknowledged.
type tally struct {
	env    *Env
	lines  []int // CSV line of each report, 0 when not from a file
	total  int
	failed int
}

func (t *tally) where(i int) string {
	if t.lines[i] > 0 {
		return fmt.Sprintf("line %d: ", t.lines[i])
	}
	return ""
}

// ok reports report i acknowledged; extra is added inside the parentheses.
func (t *tally) ok(i int, r *tes.Report, extra string) {
	fmt.Fprintf(t.env.Stdout, "ok %s%s %d km/h (report %s%s)\n", t.where(i), r.Plate, r.Speed, r.ReportID, extra)
}

func (t *tally) fail(i int, r *tes.Report, err error) {
	t.failed++
	fmt.Fprintf(t.env.Stderr, "FAILED %s%s %d km/h: %s\n", t.where(i), r.Plate, r.Speed, userMessage(err))
}

// giveUp counts every report after i as not acknowledged: the run stops.
func (t *tally) giveUp(i int) { t.failed += t.total - i - 1 }

// result is the run's exit: 1 when any report was not acknowledged.
func (t *tally) result() error {
	if t.failed > 0 {
		return exitError{1, fmt.Sprintf("%d of %d reports were NOT acknowledged", t.failed, t.total)}
	}
	if t.total > 1 {
		fmt.Fprintf(t.env.Stdout, "all %d reports acknowledged\n", t.total)
	}
	return nil
}

func isFatalLogin(err error) bool {
	return tes1.IsReply(err, tes1.ReplyBadLogin) || tes1.IsReply(err, tes1.ReplyTooManyAttempts) || tes1.IsReply(err, tes1.ReplyUnauthorized)
}

// sender keeps one session and reconnects once on a broken connection; a
// resent report keeps its report_id, so the server stores it once.
type sender struct {
	server, user, password string
	timeout                time.Duration
	pins                   *pins.File
	env                    *Env
	window                 int // reports sent before waiting for replies
	c                      *tes1.Client
}

func (s *sender) connect(ctx context.Context) error {
	c, err := tes1.Dial(ctx, s.server, tes1.ClientConfig{Pins: s.pins, Timeout: s.timeout})
	if err != nil {
		return err
	}
	if c.FirstUse {
		fmt.Fprintf(s.env.Stderr, "Pinned the key of %s: %s (in %s)\n", s.server, c.Fingerprint, s.pins.Path)
	}
	if err := c.Login(ctx, s.user, s.password); err != nil {
		c.Close()
		return fmt.Errorf("login as %s: %w", s.user, err)
	}
	s.c = c
	return nil
}

// reportChunk is how many reports tes report seals before sending them.
const reportChunk = 64

// sendAll sends reports over the session, pipelined, and returns one error
// per report (nil: acknowledged). A broken connection is re-established once
// and the reports not yet acknowledged are resent with the same report_id,
// so the server stores each once.
func (s *sender) sendAll(ctx context.Context, reports []*tes.Report) []error {
	errs := make([]error, len(reports))
	todo := make([]int, len(reports)) // indexes not yet answered
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if s.c == nil {
			if err := s.connect(ctx); err != nil {
				for _, i := range todo {
					errs[i] = err
				}
				return errs
			}
		}
		xs := make([]tes1.Exchange, 0, len(todo))
		sent := todo[:0:0]
		for _, i := range todo {
			p, sig, err := s.c.SealReport(reports[i])
			if err != nil {
				errs[i] = err
				continue
			}
			xs = append(xs, tes1.Exchange{Msg: tes1.AppendMessage(nil, tes1.TypeData, p, sig)})
			sent = append(sent, i)
		}
		n, err := s.c.Pipeline(ctx, xs, s.window)
		for k := range n {
			if x := xs[k]; x.Status != tes1.StatusOK {
				errs[sent[k]] = &tes1.ReplyError{Text: x.Text}
			}
		}
		todo = sent[n:]
		if err == nil {
			break
		}
		s.close() // broken connection: reconnect once and resend the rest
		if attempt > 0 || ctx.Err() != nil {
			for _, i := range todo {
				errs[i] = err
			}
			break
		}
	}
	return errs
}

func (s *sender) close() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

func buildReport(plate, speed, limit, location, observed, reportID string) (*tes.Report, error) {
	r := &tes.Report{Plate: plate, Location: location, ReportID: reportID}
	n, err := strconv.Atoi(strings.TrimSpace(speed))
	if err != nil {
		return nil, tes.Errorf(tes.EINVALID, "Invalid speed %q: must be a whole number of km/h.", speed)
	}
	r.Speed = n
	if limit = strings.TrimSpace(limit); limit != "" {
		if r.SpeedLimit, err = strconv.Atoi(limit); err != nil {
			return nil, tes.Errorf(tes.EINVALID, "Invalid speed limit %q: must be a whole number of km/h.", limit)
		}
	}
	if observed = strings.TrimSpace(observed); observed != "" {
		if r.ObservedAt, err = time.Parse(time.RFC3339, observed); err != nil {
			return nil, tes.Errorf(tes.EINVALID, "Invalid observed time %q: use RFC 3339, e.g. 2026-01-02T15:04:05Z.", observed)
		}
	} else {
		r.ObservedAt = time.Now().UTC().Truncate(time.Second)
	}
	if r.ReportID == "" {
		r.ReportID = tes.NewReportID()
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// csvColumns are the columns ReadCSV knows, in positional order.
var csvColumns = []string{"plate", "speed", "speed_limit", "location", "observed_at", "report_id"}

// ReadCSV reads reports from CSV. A first row naming columns (plate, speed,
// ...) sets their order; otherwise columns are positional. Every row is
// validated before anything is sent; the first bad row is an error naming
// its line. It returns each report's line number.
func ReadCSV(r io.Reader) ([]*tes.Report, []int, error) {
	cr := csv.NewReader(io.LimitReader(r, 64<<20))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	idx := map[string]int{}
	for i, c := range csvColumns {
		idx[c] = i
	}
	var out []*tes.Report
	var lines []int
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("CSV: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "plate") || first && containsFold(rec, "speed") {
			idx = map[string]int{}
			for i, h := range rec {
				h = strings.ToLower(strings.TrimSpace(h))
				if !containsFold(csvColumns, h) {
					return nil, nil, fmt.Errorf("CSV line %d: unknown column %q (known: %s)", line, h, strings.Join(csvColumns, ", "))
				}
				idx[h] = i
			}
			if _, ok := idx["plate"]; !ok {
				return nil, nil, fmt.Errorf("CSV line %d: the header has no plate column", line)
			}
			if _, ok := idx["speed"]; !ok {
				return nil, nil, fmt.Errorf("CSV line %d: the header has no speed column", line)
			}
			continue
		}
		if len(out) >= 1_000_000 {
			return nil, nil, fmt.Errorf("CSV line %d: at most 1,000,000 reports per run", line)
		}
		get := func(col string) string {
			if i, ok := idx[col]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		rep, err := buildReport(get("plate"), get("speed"), get("speed_limit"), get("location"), get("observed_at"), get("report_id"))
		if err != nil {
			return nil, nil, fmt.Errorf("CSV line %d: %s", line, userMessage(err))
		}
		out = append(out, rep)
		lines = append(lines, line)
	}
	return out, lines, nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

// reportViaOutbox queues the reports in the outbox and drains it through
// the suite the client is entitled to: the TLS suite when this client is
// (or now becomes) enrolled for the server's host, with the same
// no-downgrade rule as a direct send; TES/1 otherwise.
func reportViaOutbox(ctx context.Context, env *Env, tf *tlsFlags, pw passwordSource, dir, server, user, pinsFile string,
	timeout time.Duration, reports []*tes.Report, lines []int) error {
	var dev *tlssuite.Device
	var err error
	switch {
	case *tf.join != "":
		if dev, err = tlssuite.EnrollWith(ctx, *tf.join, *tf.dir, tlssuite.Options{Addr: *tf.server, Timeout: timeout}); err != nil {
			return fmt.Errorf("enrol: %w", err)
		}
		fmt.Fprintf(env.Stderr, "Enrolled as device %s of user %s at %s (CA %s)\n", dev.ID, dev.User, dev.Addr, dev.CAHash)
	case *tf.tls:
		if dev, err = tlssuite.LoadDevice(*tf.dir); err != nil {
			return fmt.Errorf("%w: enrol first with --join TOKEN (tes device add on the officer)", err)
		}
	default:
		dev = tf.enrolledFor(server)
	}
	dc := outbox.DialConfig{Server: server, Pins: pins.Open(pinsFile), Device: dev, TLSAddr: *tf.server,
		AllowLegacy: *tf.allowLegacy, Timeout: timeout,
		Log: slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	password := ""
	if dev != nil && dc.UsesTLS() {
		user = dev.User // the device certificate names the user; no password over TLS
		if *tf.allowLegacy {
			password, _ = pw.read(env, "Password for "+user+" (for a fallback to TES/1): ")
		}
	} else {
		if user == "" {
			return exitError{2, "--user is required (a police or admin account)"}
		}
		if password, err = pw.read(env, "Password for "+user+": "); err != nil {
			return err
		}
	}
	return sendViaOutbox(ctx, env, dir, server, user, password, pinsFile, timeout, outbox.NewDialer(dc), reports, lines)
}
