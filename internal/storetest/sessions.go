package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
)

var sessionsTests = []namedTest{
	{"WebSessions", testWebSessions},
	{"APITokens", testAPITokens},
}

func testWebSessions(t *testing.T, s tes.Store) {
	ctx := context.Background()
	mustCreateUser(t, s, "alice", tes.RoleOfficer)
	mustCreateUser(t, s, "bob", tes.RoleOfficer)
	a1 := &tes.WebSession{IDHash: digestOf("a1"), User: "alice", CSRFToken: "csrf-a1", CreatedAt: base, LastSeen: base}
	a2 := &tes.WebSession{IDHash: digestOf("a2"), User: "alice", CSRFToken: "csrf-a2", CreatedAt: base, LastSeen: base}
	b1 := &tes.WebSession{IDHash: digestOf("b1"), User: "bob", CSRFToken: "csrf-b1", CreatedAt: base, LastSeen: base}
	for _, ws := range []*tes.WebSession{a1, a2, b1} {
		if err := s.CreateWebSession(ctx, ws); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.WebSession(ctx, digestOf("a1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.IDHash, a1.IDHash) || got.User != "alice" || got.CSRFToken != "csrf-a1" || !got.CreatedAt.Equal(us(base)) || !got.LastSeen.Equal(us(base)) {
		t.Errorf("WebSession = %+v, want %+v", got, a1)
	}
	wantCode(t, s.CreateWebSession(ctx, &tes.WebSession{IDHash: digestOf("a1"), User: "bob", CSRFToken: "x"}), tes.ECONFLICT, "CreateWebSession(same id)")
	wantCode(t, s.CreateWebSession(ctx, &tes.WebSession{IDHash: digestOf("z"), User: "nobody", CSRFToken: "x"}), tes.ENOTFOUND, "CreateWebSession(unknown user)")

	later := base.Add(10 * time.Minute)
	if err := s.TouchWebSession(ctx, digestOf("a1"), later); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.WebSession(ctx, digestOf("a1")); !got.LastSeen.Equal(us(later)) {
		t.Errorf("LastSeen = %v after Touch, want %v", got.LastSeen, us(later))
	}
	wantCode(t, s.TouchWebSession(ctx, digestOf("none"), later), tes.ENOTFOUND, "TouchWebSession(unknown)")
	_, err = s.WebSession(ctx, digestOf("none"))
	wantCode(t, err, tes.ENOTFOUND, "WebSession(unknown)")

	if err := s.DeleteWebSession(ctx, digestOf("a1")); err != nil {
		t.Fatal(err)
	}
	_, err = s.WebSession(ctx, digestOf("a1"))
	wantCode(t, err, tes.ENOTFOUND, "WebSession after delete")
	if err := s.DeleteWebSession(ctx, digestOf("a1")); err != nil {
		t.Errorf("second DeleteWebSession = %v, want nil", err)
	}

	if err := s.DeleteUserWebSessions(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = s.WebSession(ctx, digestOf("a2"))
	wantCode(t, err, tes.ENOTFOUND, "alice's other session after DeleteUserWebSessions")
	if _, err := s.WebSession(ctx, digestOf("b1")); err != nil {
		t.Errorf("bob's session after signing alice out: %v", err)
	}
	if err := s.DeleteUserWebSessions(ctx, "alice"); err != nil {
		t.Errorf("DeleteUserWebSessions with none left = %v, want nil", err)
	}
}

func testAPITokens(t *testing.T, s tes.Store) {
	ctx := context.Background()
	mustCreateUser(t, s, "alice", tes.RoleAdmin)
	if list, err := s.APITokens(ctx); err != nil || len(list) != 0 {
		t.Fatalf("APITokens on a new store = %v, %v", list, err)
	}
	ci := &tes.APIToken{IDHash: digestOf("t-ci"), Name: "ci", User: "alice", CreatedAt: base}
	billing := &tes.APIToken{IDHash: digestOf("t-billing"), Name: "billing", User: "alice", CreatedAt: base.Add(time.Minute)}
	for _, tok := range []*tes.APIToken{ci, billing} {
		if err := s.CreateAPIToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, s.CreateAPIToken(ctx, &tes.APIToken{IDHash: digestOf("t-ci"), Name: "again", User: "alice"}), tes.ECONFLICT, "CreateAPIToken(same hash)")
	wantCode(t, s.CreateAPIToken(ctx, &tes.APIToken{IDHash: digestOf("t-x"), Name: "x", User: "nobody"}), tes.ENOTFOUND, "CreateAPIToken(unknown user)")

	got, err := s.APIToken(ctx, digestOf("t-ci"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ci" || got.User != "alice" || !got.CreatedAt.Equal(us(base)) || !got.LastUsed.IsZero() || !bytes.Equal(got.IDHash, ci.IDHash) {
		t.Errorf("APIToken = %+v, want %+v", got, ci)
	}
	list, err := s.APITokens(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "billing" || list[1].Name != "ci" {
		t.Errorf("APITokens = %v, %v; want billing and ci by name", list, err)
	}
	if err := s.DeleteAPIToken(ctx, digestOf("t-ci")); err != nil {
		t.Fatal(err)
	}
	_, err = s.APIToken(ctx, digestOf("t-ci"))
	wantCode(t, err, tes.ENOTFOUND, "APIToken after delete")
	wantCode(t, s.DeleteAPIToken(ctx, digestOf("t-ci")), tes.ENOTFOUND, "DeleteAPIToken twice")
	if list, _ := s.APITokens(ctx); len(list) != 1 || list[0].Name != "billing" {
		t.Errorf("APITokens after delete = %v, want billing only", list)
	}
}
