package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/identity"
	"github.com/tes-traffic/tes/internal/officer"
	"github.com/tes-traffic/tes/internal/password"
	"github.com/tes-traffic/tes/internal/tes1"
)

// demoAccountsFile keeps the demo accounts' generated passwords (0600).
const demoAccountsFile = "demo-accounts.txt"

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "demo", "[--data DIR] [--listen ADDR] [--http ADDR] [--police-http ADDR]")
	f := addOfficerFlags(fs, env)
	policeHTTP := fs.String("police-http", envOr(env, "TES_POLICE_HTTP", ":5000"), "police web client address, empty for none (env TES_POLICE_HTTP)")
	if err := fs.Lookup("data").Value.Set(envOr(env, "TES_DATA", "tes-demo")); err != nil {
		return err
	}
	fs.Lookup("data").DefValue = "tes-demo"
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := f.config(env)
	if err != nil {
		return err
	}
	srv, err := officer.Open(ctx, cfg)
	if err != nil {
		return err
	}
	accounts, fresh, err := demoAccounts(ctx, srv, f.store.DataDir)
	if err != nil {
		srv.Close()
		return err
	}
	// The police web client, pointed at this server, with its own data.
	pctx, stopPolice := context.WithCancel(ctx)
	defer stopPolice()
	var police *runningPolice
	if a := srv.TES1Addr(); a != nil && *policeHTTP != "" {
		police, err = startPolice(pctx, policeOptions{server: hostPort(a.String()), http: *policeHTTP,
			data: filepath.Join(f.store.DataDir, "police"), log: cfg.Log})
		if err != nil {
			srv.Close()
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	if fresh && srv.TES1Addr() != nil {
		if err := demoReports(ctx, srv, accounts["police1"]); err != nil {
			fmt.Fprintf(env.Stderr, "could not send the sample reports: %v\n", err)
		}
	}
	w := env.Stdout
	fmt.Fprintf(w, "\nTES demo is running (data in %s). Press Ctrl-C to stop.\n\n", f.store.DataDir)
	if a := srv.HTTPAddr(); a != nil {
		fmt.Fprintf(w, "  Officer dashboard: %s  (sign in as officer1 / %s)\n", browserURL(a.String()), accounts["officer1"])
	}
	if police != nil {
		fmt.Fprintf(w, "  Police client:     %s  (sign in as police1 / %s)\n", browserURL(police.addr.String()), accounts["police1"])
	}
	if a := srv.TES1Addr(); a != nil {
		fmt.Fprintf(w, "  TES/1 server:      %s  (police account police1 / %s)\n", hostPort(a.String()), accounts["police1"])
		fmt.Fprintf(w, "\n  Send a report:  TES_PASSWORD=%s tes report --server %s --user police1 --plate 34ABC123 --speed 120\n",
			accounts["police1"], hostPort(a.String()))
	}
	fmt.Fprintf(w, "  List them:      tes violations --data %s\n", f.store.DataDir)
	fmt.Fprintf(w, "\n  Passwords are in %s.\n", filepath.Join(f.store.DataDir, demoAccountsFile))
	err = <-done
	if police != nil {
		stopPolice()
		police.wait()
	}
	return err
}

// demoAccounts creates officer1 and police1 with generated passwords the
// first time, and reads them back later.
func demoAccounts(ctx context.Context, srv *officer.Server, dir string) (map[string]string, bool, error) {
	path := filepath.Join(dir, demoAccountsFile)
	accounts := map[string]string{}
	if f, err := os.Open(path); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, pw, ok := strings.Cut(sc.Text(), " "); ok {
				accounts[name] = pw
			}
		}
		if accounts["officer1"] != "" && accounts["police1"] != "" {
			return accounts, false, nil
		}
	}
	var sb strings.Builder
	for _, a := range []struct {
		name string
		role tes.Role
	}{{"officer1", tes.RoleOfficer}, {"police1", tes.RolePolice}} {
		pw := password.Generate()
		if _, err := srv.Auth.CreateUser(ctx, "demo", a.name, a.role, pw, false); err != nil {
			if tes.ErrorCode(err) != tes.ECONFLICT {
				return nil, false, err
			}
			if err := srv.Auth.SetPassword(ctx, "demo", a.name, pw, false); err != nil {
				return nil, false, err
			}
		}
		accounts[a.name] = pw
		fmt.Fprintf(&sb, "%s %s\n", a.name, pw)
	}
	os.Remove(path)
	return accounts, true, identity.WriteSecret(path, []byte(sb.String()))
}

// demoReports sends a few reports over the real protocol so the dashboard
// has something to review.
func demoReports(ctx context.Context, srv *officer.Server, pw string) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := tes1.Dial(cctx, srv.TES1Addr().String(), tes1.ClientConfig{Fingerprint: srv.TES1.Fingerprint()})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(cctx, "police1", pw); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	samples := []tes.Report{
		{Plate: "34ABC123", Speed: 120, SpeedLimit: 90, Location: "E5 km 12, northbound"},
		{Plate: "06XYZ99", Speed: 64, SpeedLimit: 50, Location: "Main Street school zone"},
		{Plate: "AB123", Speed: 85, SpeedLimit: 70, Location: "Ring road exit 4"},
		{Plate: "TR06", Speed: 102, SpeedLimit: 80, Location: "Coast road"},
		{Plate: "XY999", Speed: 55, SpeedLimit: 50, Location: "Harbour avenue"},
	}
	for i := range samples {
		r := samples[i]
		r.ReportID = tes.NewReportID()
		r.ObservedAt = now.Add(-time.Duration(len(samples)-i) * 7 * time.Minute)
		if err := c.Send(cctx, &r); err != nil {
			return err
		}
	}
	return nil
}

// browserURL turns a listen address into a URL a browser can open.
func browserURL(addr string) string { return "http://" + hostPort(addr) + "/" }

func hostPort(addr string) string {
	if strings.HasPrefix(addr, "[::]:") || strings.HasPrefix(addr, "0.0.0.0:") {
		return "localhost:" + addr[strings.LastIndex(addr, ":")+1:]
	}
	return addr
}
