package officerui

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/evidence"
)

// EvidenceExporter builds the self-contained, sealed evidence file of a
// violation (record, the reporting unit's signature, certificate chain and
// the officer's seal), which `tes evidence verify` checks with no database
// and no server. *evidence.Exporter is one. Export returns ENOTFOUND for an
// unknown id and store errors.
type EvidenceExporter interface {
	Export(ctx context.Context, id int64) ([]byte, error)
}

// evidenceView is the process page's Evidence section: the stored evidence
// checked again by evidence.Describe on every page load, the device
// certificate, and in plain words what the evidence proves and what not.
type evidenceView struct {
	evidence.Status
	TLS       bool
	TES1      bool
	Cert      *certView // the device certificate (TLS), nil otherwise
	Problem   string    // Status.Problem as a sentence; "" when all checks pass
	Proves    []string
	NotProved []string
	ExportURL string // the download link; "" when the dashboard has no exporter
}

// certView is a device certificate as the page shows it.
type certView struct {
	Subject   string
	DeviceID  string
	User      string
	Issuer    string
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
	Expired   bool // NotAfter is before now: it was valid at ingest, not any more
}

// describeEvidence builds the Evidence section of v.
func (ui *UI) describeEvidence(v *tes.Violation) *evidenceView {
	st := evidence.Describe(v)
	ev := &evidenceView{Status: st, TLS: v.Suite == tes.SuiteTLS, TES1: v.Suite == tes.SuiteTES1}
	if ui.cfg.Evidence != nil {
		ev.ExportURL = "/process/" + strconv.FormatInt(v.ID, 10) + "/evidence"
	}
	if ev.TLS && st.Signed {
		if c, err := x509.ParseCertificate(v.Evidence.PublicKey); err == nil {
			cv := &certView{Subject: c.Subject.CommonName, Issuer: c.Issuer.CommonName,
				Serial: hex.EncodeToString(c.SerialNumber.Bytes()), NotBefore: c.NotBefore, NotAfter: c.NotAfter,
				Expired: ui.now().After(c.NotAfter)}
			cv.DeviceID, cv.User, _ = ca.DeviceIdentity(c)
			ev.Cert = cv
		}
	}
	switch st.Problem {
	case "":
	case "no signature":
		ev.Problem = "The report carries no signature of the reporting unit."
	default:
		ev.Problem = sentence(st.Problem)
	}

	switch {
	case !st.Signed:
		ev.NotProved = append(ev.NotProved,
			"Who made this report: it carries no signature of a reporting unit, so only the server's record stands behind it.")
	case !st.Verified:
		ev.NotProved = append(ev.NotProved,
			"Anything about who sent this report or what they sent: the signature does not check out against the stored record. Treat the report as unsigned and find out why before relying on it.")
	case ev.TLS && st.FieldsMatch:
		ev.Proves = append(ev.Proves,
			fmt.Sprintf("Device %s, enrolled for user %s, signed this report with the Ed25519 key that its certificate holds.", st.DeviceID, v.ReportedBy),
			"The signed facts (report ID, device, user, plate, speed, speed limit, location, observed time) are exactly the ones on this page.")
		ev.NotProved = append(ev.NotProved,
			"That the certificate was issued by this server's CA: the exported file carries the chain, and tes evidence verify checks it.",
			"That the speed was measured correctly: the signature shows who reported what, not that the equipment was right.")
	case ev.TLS:
		ev.Proves = append(ev.Proves,
			fmt.Sprintf("Device %s signed some report with the key its certificate holds.", st.DeviceID))
		ev.NotProved = append(ev.NotProved,
			"That the facts on this page are what the device signed: the stored record differs from the signed one.")
	case ev.TES1:
		ev.Proves = append(ev.Proves,
			"The holder of the RSA key "+st.KeyFingerprint+" signed the encrypted message (its IV and DES ciphertext) exactly as the server received it.")
		ev.NotProved = append(ev.NotProved,
			"Who holds that key: TES/1 client keys are self-asserted. No CA certifies them and no device is bound to them; the user is whoever signed in on that connection.",
			"That the plate, speed and other facts on this page are what the message held: the DES session key is not kept, so the plaintext cannot be tied to the ciphertext. They are the server's record of what it decrypted.")
	}
	return ev
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// evidenceDownload answers GET /process/{id}/evidence with the violation's
// sealed evidence file as an attachment. Every download is recorded in the
// audit log as "evidence.exported" before a byte is sent; when that fails,
// nothing is sent.
func (ui *UI) evidenceDownload(w http.ResponseWriter, r *http.Request) {
	if ui.cfg.Evidence == nil {
		ui.notFound(w, r)
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.pageError(w, r, err)
		return
	}
	if err := ui.sendEvidence(w, r, id); err != nil {
		ui.pageError(w, r, err)
	}
}

// apiEvidence answers GET /api/violations/{id}/evidence: the same file, for
// integrations, audited the same way.
func (ui *UI) apiEvidence(w http.ResponseWriter, r *http.Request) {
	if ui.cfg.Evidence == nil {
		ui.apiNotFound(w, r)
		return
	}
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		ui.apiError(w, r, err)
		return
	}
	if err := ui.sendEvidence(w, r, id); err != nil {
		ui.apiError(w, r, err)
	}
}

// sendEvidence exports violation id, audits the export and writes the file.
// An error means nothing was written.
func (ui *UI) sendEvidence(w http.ResponseWriter, r *http.Request, id int64) error {
	ctx := r.Context()
	user := current(r).User
	v, err := ui.review.Violation(ctx, user, id)
	if err != nil {
		return err
	}
	body, err := ui.cfg.Evidence.Export(ctx, id)
	if err != nil {
		return fmt.Errorf("export evidence of violation %d: %w", id, err)
	}
	name := evidence.Describe(v).ExportFileName
	sum := sha256.Sum256(body)
	setHeaders := func() {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Cache-Control", "no-store")
	}
	if r.Method == http.MethodHead {
		// A HEAD (GET routes answer it too) sends no copy: nothing to record.
		setHeaders()
		w.WriteHeader(http.StatusOK)
		return nil
	}
	// The chain of custody needs every copy that leaves the server on
	// record, so the export is refused when the audit log cannot take it.
	if err := ui.store.AppendEvents(ctx, &tes.Event{At: ui.now(), Actor: user.Name, Action: "evidence.exported",
		Subject: "violation:" + strconv.FormatInt(id, 10),
		Detail:  "file=" + name + " sha256=" + hex.EncodeToString(sum[:])}); err != nil {
		return fmt.Errorf("audit evidence export of violation %d: %w", id, err)
	}
	setHeaders()
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}
