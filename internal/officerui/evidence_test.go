package officerui_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/officerui"
)

// wantHTML is wantBody on the page with its character references
// unescaped: html/template writes "+" as "&#43;".
func wantHTML(t *testing.T, r *resp, subs ...string) {
	t.Helper()
	page := html.UnescapeString(r.body)
	for _, s := range subs {
		if !strings.Contains(page, s) {
			t.Errorf("%s %s: page lacks %q:\n%.6000s", r.Request.Method, r.Request.URL.Path, s, page)
		}
	}
}

// tlsReport is a report that device cam-042 of unit07 signed.
func tlsReport() tes.Report {
	r := tes.Report{Plate: "TLS 42", Speed: 97, SpeedLimit: 60, Location: "Quay Street, eastbound",
		ObservedAt: time.Now().Add(-time.Minute), User: "unit07"}
	pki().signTLS(&r, "cam-042")
	return r
}

// tes1Report is a report that unit07 sent over TES/1.
func tes1Report() tes.Report {
	return tes.Report{Plate: "DES 56", Speed: 88, SpeedLimit: 50, Location: "Harbour Road", User: "unit07",
		Suite: tes.SuiteTES1, Evidence: demoEvidence("unit07")}
}

// TestEvidenceSection: the process page shows each suite's evidence as
// checked now, the certificate of a TLS device, what the evidence proves
// and what not, and the download link.
func TestEvidenceSection(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(tes1Report(), tlsReport())
	olga := e.login("olga")

	t.Run("TES/1", func(t *testing.T) {
		r := olga.get("/process/" + itoa(ids[0]))
		wantStatus(t, r, http.StatusOK)
		wantHTML(t, r, `<h2 id="evidence-heading">Evidence</h2>`, "TES/1 (legacy RSA + DES)",
			"None: TES/1 has no enrolled devices", "✓ Verified now", "(at ingest: verified)",
			"Cannot be compared: TES/1 signs the encrypted message", demoEvidence("unit07").KeyFingerprint,
			"None: TES/1 client keys are self-asserted, not certified",
			"What this evidence proves", "signed the encrypted message",
			"What it does not prove", "TES/1 client keys are self-asserted",
			"the plaintext cannot be tied to the ciphertext",
			`href="/process/`+itoa(ids[0])+`/evidence"`, "Download evidence file", "tes evidence verify --file FILE")
		if strings.Contains(r.body, `id="evidence-problem"`) || strings.Contains(r.body, `id="evidence-warning"`) {
			t.Errorf("a verified TES/1 report shows a problem:\n%s", r.body)
		}
	})

	t.Run("TLS", func(t *testing.T) {
		r := olga.get("/process/" + itoa(ids[1]))
		wantStatus(t, r, http.StatusOK)
		dev := pki().device("cam-042", "unit07").cert
		wantHTML(t, r, "TLS 1.3, enrolled device", "<code>cam-042</code>", "✓ Verified now", "✓ Match this record",
			"Device <code>cam-042</code>, user <strong>unit07</strong>", "Issued by "+pki().ca.Cert.Subject.CommonName,
			"Valid "+dev.NotBefore.UTC().Format("2006-01-02 15:04:05")+" to "+dev.NotAfter.UTC().Format("2006-01-02 15:04:05"),
			"Serial <code>"+hex.EncodeToString(dev.SerialNumber.Bytes())+"</code>",
			"Device cam-042, enrolled for user unit07, signed this report",
			"are exactly the ones on this page", "tes evidence verify checks it",
			`href="/process/`+itoa(ids[1])+`/evidence"`)
		if strings.Contains(r.body, `id="evidence-problem"`) || strings.Contains(r.body, "Expired") {
			t.Errorf("a verified TLS report shows a problem:\n%s", r.body)
		}
	})
}

// TestEvidenceProblems: the page re-checks the stored evidence instead of
// trusting the flag set at ingest, and says what is wrong in plain words,
// also next to the Approve button.
func TestEvidenceProblems(t *testing.T) {
	e := newEnv(t)
	edited := tlsReport()
	edited.Speed = 130 // stored differently from what the device signed
	badTLS := tlsReport()
	badTLS.Evidence.Signature[0] ^= 1
	badTES1 := tes1Report()
	badTES1.Evidence.Signature = append([]byte(nil), badTES1.Evidence.Signature...)
	badTES1.Evidence.Signature[0] ^= 1
	unsigned := tes.Report{Plate: "NO 1", Speed: 70, Suite: tes.SuiteTES1}
	ids := e.ingest(edited, badTLS, badTES1, unsigned)
	olga := e.login("olga")
	for i, tc := range []struct {
		name string
		want []string
	}{
		{"signed fields differ", []string{"✓ Verified now", "✗ Differ from this record", "The stored speed differs from what the device signed."}},
		{"TLS signature altered", []string{"✗ Does not verify", "(at ingest: verified)", "The device signature does not verify over the stored bytes."}},
		{"TES/1 signature altered", []string{"✗ Does not verify", "(at ingest: verified)", "The RSA signature does not verify over the stored ciphertext."}},
		{"unsigned", []string{"Not signed", "The report carries no signature of the reporting unit.", "it carries no signature of a reporting unit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := olga.get("/process/" + itoa(ids[i]))
			wantStatus(t, r, http.StatusOK)
			wantHTML(t, r, append(tc.want, `id="evidence-problem"`, `id="evidence-warning"`, "The evidence does not check out.")...)
			if strings.Contains(r.body, "✓ Verified now") && tc.name != "signed fields differ" {
				t.Errorf("evidence that does not verify is shown as verified")
			}
			if strings.Contains(r.body, `id="evidence-proves"`) && tc.name != "signed fields differ" {
				t.Errorf("evidence that does not verify claims to prove something")
			}
		})
	}
}

// exportEvents returns the audit log's evidence.exported events, newest
// first.
func (e *env) exportEvents() []*tes.Event {
	e.t.Helper()
	evs, err := e.store.Events(context.Background(), 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*tes.Event
	for _, ev := range evs {
		if ev.Action == "evidence.exported" {
			out = append(out, ev)
		}
	}
	return out
}

// wantEvidenceFile checks a download: the headers, that the file verifies
// with nothing but its bytes under the officer's CA, and that the export
// was audited with the file's hash.
func wantEvidenceFile(t *testing.T, e *env, r *resp, id int64, suite, actor string) {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	name := "violation-" + itoa(id) + "-evidence.json"
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename="`+name+`"` {
		t.Errorf("Content-Disposition %q, want an attachment named %s", cd, name)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	res, err := evidence.Verify([]byte(r.body), evidence.VerifyOptions{CAHash: pki().ca.Hash()})
	if err != nil {
		t.Fatalf("the downloaded file does not verify: %v\n%s", err, r.body)
	}
	if res.ViolationID != id || res.Suite != suite {
		t.Errorf("the file is of violation %d (%s), want %d (%s)", res.ViolationID, res.Suite, id, suite)
	}
	evs := e.exportEvents()
	if len(evs) == 0 {
		t.Fatal("the export is not in the audit log")
	}
	sum := sha256.Sum256([]byte(r.body))
	got := evs[0]
	if got.Actor != actor || got.Subject != "violation:"+itoa(id) ||
		got.Detail != "file="+name+" sha256="+hex.EncodeToString(sum[:]) {
		t.Errorf("audit event %+v, want actor %s, subject violation:%d and the file's name and SHA-256", got, actor, id)
	}
}

// TestEvidenceDownload: an officer downloads each suite's sealed evidence
// file from the process page, an integration from the API with a token;
// each file verifies on its own and each download is audited.
func TestEvidenceDownload(t *testing.T) {
	e := newEnv(t)
	ids := e.ingest(tes1Report(), tlsReport())
	olga := e.login("olga")
	wantEvidenceFile(t, e, olga.get("/process/"+itoa(ids[0])+"/evidence"), ids[0], tes.SuiteTES1, "olga")
	wantEvidenceFile(t, e, olga.get("/process/"+itoa(ids[1])+"/evidence"), ids[1], tes.SuiteTLS, "olga")
	wantEvidenceFile(t, e, olga.get("/api/violations/"+itoa(ids[1])+"/evidence"), ids[1], tes.SuiteTLS, "olga")

	raw, _, err := e.auth.CreateAPIToken(context.Background(), "test", "court export", "ada")
	if err != nil {
		t.Fatal(err)
	}
	api := e.client()
	api.hdr.Set("Authorization", "Bearer "+raw)
	wantEvidenceFile(t, e, api.get("/api/violations/"+itoa(ids[0])+"/evidence"), ids[0], tes.SuiteTES1, "ada")
	if n := len(e.exportEvents()); n != 4 {
		t.Errorf("%d evidence.exported events after 4 downloads", n)
	}

	// Unknown and malformed ids: a page or a JSON error, nothing audited.
	wantStatus(t, olga.get("/process/999/evidence"), http.StatusNotFound)
	wantStatus(t, olga.get("/process/abc/evidence"), http.StatusNotFound)
	r := api.get("/api/violations/999/evidence")
	wantStatus(t, r, http.StatusNotFound)
	if b := decodeJSON[map[string]string](t, r); b["code"] != tes.ENOTFOUND {
		t.Errorf("API body for an unknown id: %v", b)
	}
	if n := len(e.exportEvents()); n != 4 {
		t.Errorf("%d evidence.exported events after refused downloads, want still 4", n)
	}

	// A HEAD sends no copy: the headers, no body, nothing audited.
	req, _ := http.NewRequest(http.MethodHead, e.srv.URL+"/process/"+itoa(ids[0])+"/evidence", nil)
	h := olga.do(req)
	wantStatus(t, h, http.StatusOK)
	if h.body != "" || !strings.Contains(h.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("HEAD: body %d bytes, Content-Disposition %q", len(h.body), h.Header.Get("Content-Disposition"))
	}
	if n := len(e.exportEvents()); n != 4 {
		t.Errorf("%d evidence.exported events after a HEAD, want still 4", n)
	}
}

// TestEvidenceDownloadRefused: without a session the link leads to the
// sign-in page (the API answers 401), police get 403, and none of it is
// exported or audited.
func TestEvidenceDownloadRefused(t *testing.T) {
	e := newEnv(t)
	id := itoa(e.ingest(tlsReport())[0])
	anon := e.client()
	r := anon.get("/process/" + id + "/evidence")
	wantStatus(t, r, http.StatusSeeOther)
	if loc := r.location(); loc != "/login?next=%2Fprocess%2F"+id+"%2Fevidence" {
		t.Errorf("signed out, the download redirects to %q", loc)
	}
	wantStatus(t, anon.get("/api/violations/"+id+"/evidence"), http.StatusUnauthorized)

	pete := e.login("pete")
	r = pete.get("/process/" + id + "/evidence")
	wantStatus(t, r, http.StatusForbidden)
	wantBody(t, r, "police role")
	r = pete.get("/api/violations/" + id + "/evidence")
	wantStatus(t, r, http.StatusForbidden)
	if b := decodeJSON[map[string]string](t, r); b["code"] != tes.EFORBIDDEN {
		t.Errorf("police API body %v", b)
	}
	if evs := e.exportEvents(); len(evs) != 0 {
		t.Errorf("refused downloads were audited as exports: %+v", evs[0])
	}
}

// TestEvidenceWithoutExporter: a dashboard built without an exporter still
// shows the evidence, but no link, and the download routes do not exist.
func TestEvidenceWithoutExporter(t *testing.T) {
	e := newEnv(t, func(c *officerui.Config) { c.Evidence = nil })
	id := itoa(e.ingest(tlsReport())[0])
	olga := e.login("olga")
	r := olga.get("/process/" + id)
	wantStatus(t, r, http.StatusOK)
	wantHTML(t, r, "Evidence", "✓ Verified now", "✓ Match this record")
	if strings.Contains(r.body, "Download evidence file") || strings.Contains(r.body, "/evidence\"") {
		t.Error("the page links to an export that does not exist")
	}
	wantStatus(t, olga.get("/process/"+id+"/evidence"), http.StatusNotFound)
	r = olga.get("/api/violations/" + id + "/evidence")
	wantStatus(t, r, http.StatusNotFound)
	decodeJSON[map[string]string](t, r)
}

// failingAudit is a store whose audit log refuses every entry.
type failingAudit struct{ tes.Store }

func (failingAudit) AppendEvents(context.Context, ...*tes.Event) error {
	return errors.New("audit log: disk full")
}

// TestEvidenceNotSentUnaudited: a copy of the evidence never leaves the
// server without its audit entry; when the log refuses it, the officer gets
// an error and no file.
func TestEvidenceNotSentUnaudited(t *testing.T) {
	// Sign-in is audited by auth.Service over the real store; only the
	// dashboard's own appends go through the failing one.
	e := newEnv(t, func(c *officerui.Config) { c.Store = failingAudit{c.Store} })
	id := itoa(e.ingest(tlsReport())[0])
	r := e.login("olga").get("/process/" + id + "/evidence")
	wantStatus(t, r, http.StatusInternalServerError)
	if strings.Contains(r.body, evidence.FileFormat) || r.Header.Get("Content-Disposition") != "" {
		t.Errorf("the file was sent although its export could not be audited:\n%.300s", r.body)
	}
}
