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
		{"SQLite on one core", 1, "", env(), 2},
		{"SQLite at a path, one core", 1, "sqlite:/var/lib/tes/tes.db", env(), 2},
		{"SQLite on two cores", 2, "", env(), 2},
		{"SQLite on eight cores", 8, "sqlite:/var/lib/tes/tes.db", env(), 8},
		{"PostgreSQL on one core", 1, "postgres://tes@db/tes", env(), 1},
		{"postgresql scheme", 4, "postgresql://tes@db/tes", env(), 4},
		{"the operator's GOMAXPROCS wins", 1, "", env("GOMAXPROCS", "1"), 1},
		{"other variables do not count", 1, "", env("GOGC", "200"), 2},
	} {
		if got := officerProcs(c.cores, c.db, c.env); got != c.want {
			t.Errorf("%s: officerProcs(%d, %q) = %d, want %d", c.name, c.cores, c.db, got, c.want)
		}
	}
}
