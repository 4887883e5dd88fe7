package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// passwordSource adds --password-file; readPassword then takes the password
// from that file, from TES_PASSWORD, or from an interactive prompt, in that
// order. There is no --password flag: it would show in ps and shell history.
type passwordSource struct{ file *string }

func addPasswordFlag(fs *flag.FlagSet) passwordSource {
	return passwordSource{file: fs.String("password-file", "", "read the password from this file's first line (or set TES_PASSWORD, or type it at the prompt)")}
}

func (p passwordSource) read(env *Env, prompt string) (string, error) {
	if *p.file != "" {
		b, err := os.ReadFile(*p.file)
		if err != nil {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		line = strings.TrimRight(line, "\r")
		if line == "" {
			return "", fmt.Errorf("--password-file %s: the first line is empty", *p.file)
		}
		return line, nil
	}
	if v := env.Getenv("TES_PASSWORD"); v != "" {
		return v, nil
	}
	if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(env.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	return "", errors.New("no password: use --password-file FILE, set TES_PASSWORD, or run in a terminal to be prompted")
}

// readLine reads one line from stdin (used for confirmations).
func readLine(env *Env) string {
	s, _ := bufio.NewReader(env.Stdin).ReadString('\n')
	return strings.TrimSpace(s)
}
