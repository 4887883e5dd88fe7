package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/review"
)

// violationJSON is the --json shape of a violation, shared with the API.
type violationJSON struct {
	ID            int64      `json:"id"`
	ReportID      string     `json:"report_id,omitempty"`
	Plate         string     `json:"plate"`
	Speed         int        `json:"speed"`
	SpeedLimit    int        `json:"speed_limit,omitempty"`
	Location      string     `json:"location,omitempty"`
	ObservedAt    *time.Time `json:"observed_at,omitempty"`
	ReceivedAt    time.Time  `json:"received_at"`
	ReportedBy    string     `json:"reported_by"`
	Suite         string     `json:"suite"`
	KeyFP         string     `json:"key_fingerprint,omitempty"`
	SigVerified   bool       `json:"signature_verified"`
	Status        string     `json:"status"`
	Points        int        `json:"points"`
	PointsApplied int        `json:"points_applied"`
	DecidedBy     string     `json:"decided_by,omitempty"`
	DecidedAt     *time.Time `json:"decided_at,omitempty"`
	RejectReason  string     `json:"reject_reason,omitempty"`
	RejectNote    string     `json:"reject_note,omitempty"`
}

func toJSON(v *tes.Violation, rules tes.Rules) violationJSON {
	j := violationJSON{ID: v.ID, ReportID: v.ReportID, Plate: v.Plate, Speed: v.Speed, SpeedLimit: v.SpeedLimit,
		Location: v.Location, ReceivedAt: v.ReceivedAt.UTC(), ReportedBy: v.ReportedBy, Suite: v.Suite,
		KeyFP: v.Evidence.KeyFingerprint, SigVerified: v.SigVerified, Status: string(v.Status),
		Points: v.Points(rules), PointsApplied: v.PointsApplied, DecidedBy: v.DecidedBy,
		RejectReason: string(v.RejectReason), RejectNote: v.RejectNote}
	if !v.ObservedAt.IsZero() {
		t := v.ObservedAt.UTC()
		j.ObservedAt = &t
	}
	if !v.DecidedAt.IsZero() {
		t := v.DecidedAt.UTC()
		j.DecidedAt = &t
	}
	return j
}

func openStoreCmd(ctx context.Context, c *officer.StoreConfig) (tes.Store, error) {
	return officer.OpenStore(ctx, *c)
}

func runViolations(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "violations", "[--data DIR] [--status pending|approved|rejected] [--plate P] [--json]")
	sc := storeFlags(fs, env)
	status := fs.String("status", "", "only this status: pending, approved or rejected")
	plate := fs.String("plate", "", "only this plate")
	asJSON := fs.Bool("json", false, "print a JSON array for scripts")
	limit := fs.Int("limit", 0, "print at most this many (default all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f := tes.ViolationFilter{Limit: 1000}
	if *status != "" {
		st, err := tes.ParseStatus(*status)
		if err != nil {
			return exitError{2, userMessage(err)}
		}
		f.Status = st
	}
	if *plate != "" {
		p, err := tes.NormalizePlate(*plate)
		if err != nil {
			return exitError{2, userMessage(err)}
		}
		f.Plate = p
	}
	store, err := openStoreCmd(ctx, sc)
	if err != nil {
		return err
	}
	defer store.Close()
	rules := tes.DefaultRules()
	var tw *tabwriter.Writer
	enc := json.NewEncoder(env.Stdout)
	if *asJSON {
		fmt.Fprint(env.Stdout, "[")
	} else {
		tw = tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tPLATE\tSPEED\tPOINTS\tSTATUS\tREPORTED BY\tDECIDED BY")
	}
	n := 0
	for {
		page, next, err := store.Violations(ctx, f)
		if err != nil {
			return err
		}
		for _, v := range page {
			if *limit > 0 && n >= *limit {
				next = nil
				break
			}
			if *asJSON {
				if n > 0 {
					fmt.Fprint(env.Stdout, ",")
				}
				if err := enc.Encode(toJSON(v, rules)); err != nil {
					return err
				}
			} else {
				pts := strconv.Itoa(v.Points(rules))
				if v.Status == tes.StatusApproved {
					pts = strconv.Itoa(v.PointsApplied)
				} else if v.Status == tes.StatusRejected {
					pts = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", v.ID, v.ReceivedAt.Local().Format("2006-01-02 15:04:05"),
					v.Plate, v.Speed, pts, v.Status, v.ReportedBy, v.DecidedBy)
			}
			n++
		}
		if next == nil {
			break
		}
		f.After = next
	}
	if *asJSON {
		fmt.Fprintln(env.Stdout, "]")
		return nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "%d violation(s)\n", n)
	return nil
}

// cliActor is who a decision from the shell is recorded as: the OS user,
// acting with admin rights because it holds the data directory.
func cliActor(env *Env, as string) *tes.User {
	if as == "" {
		as = env.Getenv("USER")
		if as == "" {
			as = strconv.Itoa(os.Getuid())
		}
		as = "cli:" + as
	}
	return &tes.User{Name: as, Role: tes.RoleAdmin}
}

func decideCmd(ctx context.Context, env *Env, name string, args []string, approve bool) error {
	syn := "ID [--data DIR]"
	if !approve {
		syn = "ID --reason TEXT|CODE [--note TEXT] [--data DIR]"
	}
	fs := newFlags(env, name, syn)
	sc := storeFlags(fs, env)
	as := fs.String("as", "", "record the decision as this name (default cli:$USER)")
	var reason, note *string
	if !approve {
		reason = fs.String("reason", "", "why: a code (plate_unreadable, duplicate, exempt_vehicle, equipment_fault, other) or free text (recorded as other)")
		note = fs.String("note", "", "free text to go with a reason code")
	}
	// Accept the ID before or after the flags.
	var idArg string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		idArg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if idArg == "" && fs.NArg() > 0 {
		idArg = fs.Arg(0)
	}
	id, err := strconv.ParseInt(idArg, 10, 64)
	if err != nil || id <= 0 {
		return exitError{2, "give the violation's ID (see tes violations)"}
	}
	store, err := openStoreCmd(ctx, sc)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := review.New(store, tes.DefaultRules(), newQuietLogger(env))
	actor := cliActor(env, *as)
	var d *tes.Decided
	if approve {
		d, err = svc.Approve(ctx, actor, id)
	} else {
		code, text := tes.ReasonOther, *reason
		if c, perr := tes.ParseRejectReason(*reason); perr == nil {
			code, text = c, *note
		} else if *note != "" {
			text = *reason + ": " + *note
		}
		if *reason == "" {
			return exitError{2, "--reason is required"}
		}
		d, err = svc.Reject(ctx, actor, id, code, text)
	}
	if err != nil {
		if tes.ErrorCode(err) == tes.ECONFLICT {
			return exitError{3, userMessage(err)}
		}
		return err
	}
	v := d.Violation
	if approve {
		fmt.Fprintf(env.Stdout, "Approved violation %d: %s at %d km/h, %d points; %s now has %d points.\n",
			v.ID, v.Plate, v.Speed, v.PointsApplied, v.Plate, d.DriverTotal)
	} else {
		fmt.Fprintf(env.Stdout, "Rejected violation %d (%s): %s\n", v.ID, v.RejectReason.Label(), v.RejectNote)
	}
	return nil
}

func runApprove(ctx context.Context, env *Env, args []string) error {
	return decideCmd(ctx, env, "approve", args, true)
}

func runReject(ctx context.Context, env *Env, args []string) error {
	return decideCmd(ctx, env, "reject", args, false)
}
