package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/auth"
)

const userSynopsis = `add --role police|officer|admin NAME | passwd NAME | list | disable NAME | enable NAME | role NAME ROLE   [--data DIR]`

func runUser(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(env.Stderr, "Usage: tes user "+userSynopsis)
		if len(args) == 0 {
			return exitError{2, ""}
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags(env, "user "+sub, userSynopsis)
	sc := storeFlags(fs, env)
	pw := addPasswordFlag(fs)
	role := fs.String("role", "", "role for add: police, officer or admin")
	mustChange := fs.Bool("must-change", false, "passwd: make the user change the password at next sign-in")
	// Allow the name before the flags: tes user add alice --role police.
	var pos []string
	for len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		pos, args = append(pos, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos = append(pos, fs.Args()...)
	need := map[string]int{"add": 1, "passwd": 1, "list": 0, "disable": 1, "enable": 1, "role": 2}
	n, ok := need[sub]
	if !ok {
		return exitError{2, fmt.Sprintf("unknown subcommand %q: use %s", sub, userSynopsis)}
	}
	if len(pos) != n {
		return exitError{2, fmt.Sprintf("%s takes %d argument(s): tes user %s", sub, n, userSynopsis)}
	}
	store, err := openStoreCmd(ctx, sc)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := auth.New(store, newQuietLogger(env))
	actor := cliActor(env, "").Name
	switch sub {
	case "add":
		r, err := tes.ParseRole(*role)
		if err != nil {
			return exitError{2, "--role is required: police, officer or admin"}
		}
		p, err := pw.read(env, "New password for "+pos[0]+": ")
		if err != nil {
			return err
		}
		if _, err := svc.CreateUser(ctx, actor, pos[0], r, p, *mustChange); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Added %s user %s.\n", r, pos[0])
	case "passwd":
		p, err := pw.read(env, "New password for "+pos[0]+": ")
		if err != nil {
			return err
		}
		if err := svc.SetPassword(ctx, actor, pos[0], p, *mustChange); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "Changed the password of %s; their web sessions were signed out.\n", pos[0])
	case "disable", "enable":
		if err := svc.SetDisabled(ctx, actor, pos[0], sub == "disable"); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%sd %s.\n", map[string]string{"disable": "Disable", "enable": "Enable"}[sub], pos[0])
	case "role":
		r, err := tes.ParseRole(pos[1])
		if err != nil {
			return exitError{2, userMessage(err)}
		}
		if err := svc.SetRole(ctx, actor, pos[0], r); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s is now %s.\n", pos[0], r)
	case "list":
		users, err := store.Users(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tCREATED")
		for _, u := range users {
			state := "active"
			switch {
			case u.Disabled:
				state = "disabled"
			case u.MustChangePass:
				state = "must change password"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, state, u.CreatedAt.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	}
	return nil
}
