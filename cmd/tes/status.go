package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/identity"
	"github.com/tes-traffic/tes/internal/legacy"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/pins"
)

func runStatus(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "status", "[--data DIR] [--events N]")
	sc := storeFlags(fs, env)
	nEvents := fs.Int("events", 15, "how many recent events to show")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := openStoreCmd(ctx, sc)
	if err != nil {
		return err
	}
	defer store.Close()
	w := env.Stdout
	fmt.Fprintf(w, "Data directory: %s\n", sc.DataDir)
	keyPath := filepath.Join(sc.DataDir, identity.TES1KeyFile)
	if _, err := os.Stat(keyPath); err == nil {
		key, _, err := identity.LoadOrCreateRSA(keyPath)
		if err != nil {
			return err
		}
		_, der, _ := legacy.ParsePublicKeyPEM(legacy.MarshalPublicKeyPEM(&key.PublicKey))
		fmt.Fprintf(w, "TES/1 server key: %s\n", legacy.Fingerprint(der))
	}
	if c, err := ca.Load(sc.DataDir); err == nil {
		fmt.Fprintf(w, "TLS suite CA: %s (join tokens carry this hash)\n", c.Hash())
	}
	var rt officer.Runtime
	if b, err := os.ReadFile(filepath.Join(sc.DataDir, officer.RuntimeFile)); err == nil && json.Unmarshal(b, &rt) == nil {
		fmt.Fprintf(w, "Server: running (pid %d) since %s, up %s\n", rt.PID, rt.StartedAt.Local().Format(time.RFC3339),
			time.Since(rt.StartedAt).Round(time.Second))
		fmt.Fprintf(w, "  TES/1 on %s, dashboard on http://%s/\n", orNone(rt.TES1), orNone(rt.HTTP))
		if rt.TLS != "" {
			fmt.Fprintf(w, "  TLS suite on %s\n", rt.TLS)
		}
		if rt.HTTP != "" {
			cl := http.Client{Timeout: 3 * time.Second}
			if resp, err := cl.Get("http://" + rt.HTTP + "/healthz"); err == nil {
				var h struct {
					Connections  int   `json:"connections"`
					ReportsTotal int64 `json:"reports_total"`
					RefusedTotal int64 `json:"refused_total"`
				}
				json.NewDecoder(resp.Body).Decode(&h)
				resp.Body.Close()
				fmt.Fprintf(w, "  %d open connection(s); %d report(s) acknowledged and %d request(s) refused since start\n",
					h.Connections, h.ReportsTotal, h.RefusedTotal)
			} else {
				fmt.Fprintf(w, "  (not answering on http://%s/healthz: %v)\n", rt.HTTP, err)
			}
		}
	} else {
		fmt.Fprintln(w, "Server: not running from this data directory")
	}
	counts, err := store.CountByStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Violations: %d pending, %d approved, %d rejected\n",
		counts[tes.StatusPending], counts[tes.StatusApproved], counts[tes.StatusRejected])
	events, err := store.Events(ctx, 0, *nEvents)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nRecent events:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range events {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.Subject, e.Detail)
	}
	return tw.Flush()
}

func runPins(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "pins", "list | forget HOST:PORT  [--pins FILE]")
	file := fs.String("pins", defaultPinsFile(env), "known-servers file (env TES_PINS)")
	var pos []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	p := pins.Open(*file)
	switch {
	case len(pos) == 1 && pos[0] == "list":
		list, err := p.List()
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVER\tFINGERPRINT\tFIRST SEEN")
		for _, x := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Server, x.Fingerprint, x.FirstSeen.Local().Format(time.RFC3339))
		}
		return tw.Flush()
	case len(pos) == 2 && pos[0] == "forget":
		if err := p.Forget(pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Forgot the key of %s; the next connection pins the key it shows.\n", pos[1])
		return nil
	}
	return exitError{2, "usage: tes pins list | tes pins forget HOST:PORT"}
}

func orNone(addr string) string {
	if addr == "" {
		return "(off)"
	}
	return addr
}
