package main

import "testing"

func TestOfficerProcs(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, c := range []struct {
		name  string
		cores int
		db    string
		env   func(string) string
		want  int
	}{
		{"SQLite in the data directory", 2, "", env(), 3},
		{"SQLite at a path", 1, "sqlite:/var/lib/tes/tes.db", env(), 2},
		{"PostgreSQL", 2, "postgres://tes@db/tes", env(), 2},
		{"postgresql scheme", 8, "postgresql://tes@db/tes", env(), 8},
		{"the operator's GOMAXPROCS wins", 2, "", env("GOMAXPROCS", "2"), 2},
		{"other variables do not count", 4, "", env("GOGC", "200"), 5},
	} {
		if got := officerProcs(c.cores, c.db, c.env); got != c.want {
			t.Errorf("%s: officerProcs(%d, %q) = %d, want %d", c.name, c.cores, c.db, got, c.want)
		}
	}
}
