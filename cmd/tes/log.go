package main

import "log/slog"

// newQuietLogger logs warnings and errors only, for short commands.
func newQuietLogger(env *Env) *slog.Logger {
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
