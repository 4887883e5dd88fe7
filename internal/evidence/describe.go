package evidence

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/legacy"
)

// Status is a violation's evidence as the dashboard's process page shows
// it. Describe fills it by checking the stored evidence again, so the page
// shows what holds now, not only what the server saw at ingest.
type Status struct {
	Suite            string // tes.SuiteTLS, tes.SuiteTES1 or ""
	SuiteName        string // e.g. "TLS 1.3, enrolled device"
	Signed           bool   // the report carries a reporting unit's signature
	Verified         bool   // that signature verifies now over the stored bytes with the stored key
	VerifiedAtIngest bool   // the server checked it when the report arrived
	FieldsMatch      bool   // TLS: the signed fields equal the stored record
	DeviceID         string
	KeyFingerprint   string
	// Certificate describes the device certificate in one line (TLS only):
	// device, user, serial, validity and issuer.
	Certificate    string
	CertNotAfter   time.Time
	ExportFileName string // a file name for the export link, e.g. "violation-42-evidence.json"
	Summary        string // one sentence for people
	Problem        string // why Verified or FieldsMatch is false; "" otherwise
}

// Describe checks v's stored evidence. It needs no key or CA: the chain to
// the CA is checked by `tes evidence verify` on an exported file.
func Describe(v *tes.Violation) Status {
	ev := &v.Evidence
	st := Status{Suite: v.Suite, Signed: len(ev.Signature) > 0, VerifiedAtIngest: v.SigVerified,
		DeviceID: ev.DeviceID, KeyFingerprint: ev.KeyFingerprint,
		ExportFileName: fmt.Sprintf("violation-%d-evidence.json", v.ID)}
	switch v.Suite {
	case tes.SuiteTLS:
		st.SuiteName = "TLS 1.3, enrolled device"
	case tes.SuiteTES1:
		st.SuiteName = "TES/1 (legacy RSA + DES)"
	default:
		st.SuiteName = v.Suite
	}
	if !st.Signed {
		st.Summary = "Not signed by the reporting unit."
		st.Problem = "no signature"
		return st
	}
	switch v.Suite {
	case tes.SuiteTLS:
		describeTLS(v, &st)
	case tes.SuiteTES1:
		describeTES1(v, &st)
	default:
		st.Problem = "unknown suite"
	}
	return st
}

func describeTLS(v *tes.Violation, st *Status) {
	ev := &v.Evidence
	cert, err := x509.ParseCertificate(ev.PublicKey)
	if err != nil {
		st.Problem = "the stored device certificate does not parse"
		return
	}
	id, user, err := ca.DeviceIdentity(cert)
	if err != nil {
		st.Problem = "the stored certificate is not a device certificate"
		return
	}
	st.CertNotAfter = cert.NotAfter
	st.Certificate = fmt.Sprintf("device %s (user %s), serial %s, valid %s to %s, issued by %s",
		id, user, hex.EncodeToString(cert.SerialNumber.Bytes()), cert.NotBefore.UTC().Format("2006-01-02"),
		cert.NotAfter.UTC().Format("2006-01-02"), cert.Issuer.CommonName)
	if err := VerifySignature(cert.PublicKey.(ed25519.PublicKey), ev.Signed, ev.Signature); err != nil {
		st.Problem = "the device signature does not verify over the stored bytes"
		return
	}
	st.Verified = true
	f, err := Decode(ev.Signed)
	if err != nil {
		st.Problem = "the signed bytes are not a canonical report encoding"
		return
	}
	rec := &Fields{ReportID: v.ReportID, DeviceID: ev.DeviceID, User: v.ReportedBy, Plate: v.Plate, Speed: v.Speed,
		SpeedLimit: v.SpeedLimit, Location: v.Location, ObservedAt: v.ObservedAt}
	if k := f.Diff(rec); k != "" || f.DeviceID != id || f.User != user {
		if k == "" {
			k = "device"
		}
		st.Problem = "the stored " + k + " differs from what the device signed"
		return
	}
	st.FieldsMatch = true
	st.Summary = fmt.Sprintf("Signed by device %s with a key certified for user %s; the signature and every signed field check out.", id, user)
}

func describeTES1(v *tes.Violation, st *Status) {
	ev := &v.Evidence
	k, err := x509.ParsePKIXPublicKey(ev.PublicKey)
	pub, ok := k.(*rsa.PublicKey)
	if err != nil || !ok {
		st.Problem = "the stored client key does not parse"
		return
	}
	if legacy.Verify(pub, ev.Signed, ev.Signature) != nil {
		st.Problem = "the RSA signature does not verify over the stored ciphertext"
		return
	}
	st.Verified = true
	st.Summary = "The RSA signature over the encrypted message verifies; the plaintext cannot be tied to it without the session key, and TES/1 keys are self-asserted."
}
