package officerui_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tes-traffic/tes"
)

var secretRE = regexp.MustCompile(`id="secret-value">([^<]+)<`)

// mustCreateToken has the admin create an API token on the Users page and
// returns the raw token the page shows once.
func mustCreateToken(t *testing.T, admin *client, name, user string) string {
	t.Helper()
	r := admin.post("/tokens", url.Values{"token_name": {name}, "token_user": {user}}, true)
	wantStatus(t, r, http.StatusOK)
	m := secretRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("token page shows no token:\n%s", r.body)
	}
	return m[1]
}

type apiViolation struct {
	ID                int64   `json:"id"`
	ReportID          string  `json:"report_id"`
	Plate             string  `json:"plate"`
	Speed             int     `json:"speed"`
	SpeedLimit        int     `json:"speed_limit"`
	Location          string  `json:"location"`
	ObservedAt        *string `json:"observed_at"`
	ReceivedAt        string  `json:"received_at"`
	ReportedBy        string  `json:"reported_by"`
	Status            string  `json:"status"`
	Points            int     `json:"points"`
	PointsApplied     int     `json:"points_applied"`
	DecidedBy         string  `json:"decided_by"`
	DecidedAt         *string `json:"decided_at"`
	RejectReason      string  `json:"reject_reason"`
	RejectNote        string  `json:"reject_note"`
	SignatureVerified bool    `json:"signature_verified"`
	KeyFingerprint    string  `json:"key_fingerprint"`
}

type apiDecided struct {
	Violation   apiViolation `json:"violation"`
	DriverTotal int          `json:"driver_total"`
}

type apiPage struct {
	Violations []apiViolation `json:"violations"`
	Next       *string        `json:"next"`
}

// TestAPIWithToken drives the JSON API as an integration would: with a
// bearer token an admin created, no cookies and no CSRF token.
func TestAPIWithToken(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(
		tes.Report{Plate: "API 1", Speed: 75, SpeedLimit: 50, Location: "Ring road", ReportID: "6f1c2a9e-0d3b-4c55-9a7e-2b8f1d0c3e4a",
			Evidence: demoEvidence("pete")},
		tes.Report{Plate: "API 2", Speed: 105},
		tes.Report{Plate: "API 3", Speed: 30},
	)
	ada := e.login("ada")
	raw := mustCreateToken(t, ada, "case system", "olga")
	if !strings.HasPrefix(raw, "tes_") {
		t.Errorf("token %q lacks the tes_ prefix", raw)
	}
	// The token is shown once: the list shows its name only.
	list := ada.get("/users")
	wantBody(t, list, "case system")
	if strings.Contains(list.body, raw) {
		t.Fatal("the users page shows the raw token again")
	}

	api := e.client()
	bearer := map[string]string{"Authorization": "Bearer " + raw}

	// Keyset pages of two, pending only.
	r := api.api("GET", "/api/violations?status=pending&limit=2", nil, bearer)
	wantStatus(t, r, http.StatusOK)
	p1 := decodeJSON[apiPage](t, r)
	if len(p1.Violations) != 2 || p1.Next == nil || *p1.Next == "" {
		t.Fatalf("page 1: %+v", p1)
	}
	r = api.api("GET", "/api/violations?status=pending&limit=2&after="+url.QueryEscape(*p1.Next), nil, bearer)
	p2 := decodeJSON[apiPage](t, r)
	if len(p2.Violations) != 1 || p2.Next == nil || *p2.Next != "" || p2.Violations[0].ID != ids[0] {
		t.Fatalf("page 2: %+v", p2)
	}
	// Every field of the contract is present.
	fields := decodeJSON[map[string]any](t, api.api("GET", "/api/violations/"+itoa(ids[0]), nil, bearer))
	for _, k := range []string{"id", "report_id", "plate", "speed", "speed_limit", "location", "observed_at", "received_at",
		"reported_by", "status", "points", "points_applied", "decided_by", "decided_at", "reject_reason", "reject_note",
		"signature_verified", "key_fingerprint"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("violation JSON lacks %q: %v", k, fields)
		}
	}
	v := decodeJSON[apiViolation](t, api.api("GET", "/api/violations/"+itoa(ids[0]), nil, bearer))
	if v.Plate != "API 1" || v.Speed != 75 || v.SpeedLimit != 50 || v.Points != 20 || v.Status != "PENDING" ||
		!v.SignatureVerified || !strings.HasPrefix(v.KeyFingerprint, "SHA256:") || v.ReportedBy != "pete" ||
		v.ReportID != "6f1c2a9e-0d3b-4c55-9a7e-2b8f1d0c3e4a" || v.DecidedAt != nil || v.Location != "Ring road" {
		t.Errorf("violation %+v", v)
	}

	// Approve, with points in the body that are ignored.
	r = api.api("POST", "/api/violations/"+itoa(ids[0])+"/approve", map[string]int{"points": 500}, bearer)
	wantStatus(t, r, http.StatusOK)
	dec := decodeJSON[apiDecided](t, r)
	if dec.Violation.Status != "APPROVED" || dec.Violation.PointsApplied != 20 || dec.DriverTotal != 20 || dec.Violation.DecidedBy != "olga" {
		t.Errorf("approve answer %+v", dec)
	}
	// Again: 409 naming who decided.
	r = api.api("POST", "/api/violations/"+itoa(ids[0])+"/approve", nil, bearer)
	wantStatus(t, r, http.StatusConflict)
	if b := decodeJSON[map[string]string](t, r); !strings.Contains(b["error"], "already decided by olga at") {
		t.Errorf("conflict %v", b)
	}

	// Reject with a JSON body, and with form fields.
	r = api.api("POST", "/api/violations/"+itoa(ids[1])+"/reject", map[string]string{"reason": "exempt_vehicle", "note": "Ambulance on call."}, bearer)
	wantStatus(t, r, http.StatusOK)
	if e.violation(ids[1]).RejectReason != tes.ReasonExemptVehicle {
		t.Error("JSON reject not applied")
	}
	req := url.Values{"reason": {"duplicate"}}
	hr, _ := http.NewRequest("POST", e.srv.URL+"/api/violations/"+itoa(ids[2])+"/reject", strings.NewReader(req.Encode()))
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("Authorization", "Bearer "+raw)
	wantStatus(t, api.do(hr), http.StatusOK)
	if e.violation(ids[2]).RejectReason != tes.ReasonDuplicate {
		t.Error("form reject not applied")
	}

	// Bad input is 400 JSON with a message.
	for path, body := range map[string]any{
		"/api/violations/" + itoa(ids[0]) + "/reject": map[string]string{},
		"/api/violations/x/approve":                   nil,
	} {
		r := api.api("POST", path, body, bearer)
		if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusNotFound && r.StatusCode != http.StatusConflict {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
		decodeJSON[map[string]string](t, r)
	}
	for _, q := range []string{"status=lost", "limit=5000", "after=1", "sort=x"} {
		r := api.api("GET", "/api/violations?"+q, nil, bearer)
		wantStatus(t, r, http.StatusBadRequest)
		if b := decodeJSON[map[string]string](t, r); b["error"] == "" || b["code"] != tes.EINVALID {
			t.Errorf("?%s: %v", q, b)
		}
	}
	r = api.api("POST", "/api/violations/1/reject", "not an object", map[string]string{"Authorization": "Bearer " + raw})
	if r.StatusCode != http.StatusBadRequest && r.StatusCode != http.StatusConflict {
		t.Errorf("bad JSON body: %d", r.StatusCode)
	}

	// Wrong or revoked tokens are 401.
	for _, h := range []string{"Bearer tes_wrong", "Bearer " + raw + "x", "Basic b2xnYTp4", "Bearer"} {
		r := api.api("GET", "/api/violations", nil, map[string]string{"Authorization": h})
		wantStatus(t, r, http.StatusUnauthorized)
		decodeJSON[map[string]string](t, r)
	}
	revoke := regexp.MustCompile(`action="(/tokens/[0-9a-f]{64}/revoke)"`).FindStringSubmatch(ada.get("/users").body)
	if revoke == nil {
		t.Fatal("no revoke form")
	}
	r = ada.post(revoke[1], nil, true)
	wantStatus(t, r, http.StatusSeeOther)
	wantBody(t, ada.get(r.location()), "The API token was revoked.")
	wantStatus(t, api.api("GET", "/api/violations", nil, bearer), http.StatusUnauthorized)
	// Revoking again says it is gone.
	wantStatus(t, ada.post(revoke[1], nil, true), http.StatusNotFound)

	// A disabled account's token stops working.
	raw2 := mustCreateToken(t, ada, "second", "olga")
	wantStatus(t, ada.post("/users/olga/disable", nil, true), http.StatusSeeOther)
	wantStatus(t, api.api("GET", "/api/violations", nil, map[string]string{"Authorization": "Bearer " + raw2}), http.StatusUnauthorized)

	evs, _ := e.store.Events(context.Background(), 0, 100)
	var created, revoked bool
	for _, ev := range evs {
		created = created || ev.Action == "token.created" && ev.Actor == "ada"
		revoked = revoked || ev.Action == "token.revoked" && ev.Actor == "ada"
	}
	if !created || !revoked {
		t.Errorf("audit log: token.created %v, token.revoked %v", created, revoked)
	}
}

// TestAPIWithSession: the dashboard's own pages may call the API with the
// session cookie and the X-CSRF-Token header.
func TestAPIWithSession(t *testing.T) {
	e := newEnv(t)
	id := e.ingest(tes.Report{Plate: "SES 1", Speed: 101})[0]
	c := e.login("olga")
	p := decodeJSON[apiPage](t, c.api("GET", "/api/violations", nil, nil))
	if len(p.Violations) != 1 || p.Violations[0].Points != 50 {
		t.Fatalf("list %+v", p)
	}
	r := c.api("POST", "/api/violations/"+itoa(id)+"/approve", nil, map[string]string{"X-CSRF-Token": c.csrf})
	wantStatus(t, r, http.StatusOK)
	if e.driverPoints("SES 1") != 50 {
		t.Error("approval through the API with a session did not apply")
	}
}
