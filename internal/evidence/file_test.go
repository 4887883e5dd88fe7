package evidence_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/legacy"
)

var now = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

type fixture struct {
	ca     *ca.CA
	signer *ca.Signer
	devKey ed25519.PrivateKey
	dev    *x509.Certificate
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	root, err := ca.New(nil, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	root.Now = func() time.Time { return now.Add(-time.Hour) }
	signer, err := root.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	csrDER, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(csrDER)
	dev, err := root.IssueDevice(csr, "175afcce80f2d9d1", "police1")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ca: root, signer: signer, devKey: key, dev: dev}
}

// tlsViolation is a violation as the TLS suite stores it.
func (fx *fixture) tlsViolation(t testing.TB) *tes.Violation {
	f := sampleFields()
	signed, sig, err := evidence.Sign(fx.devKey, f)
	if err != nil {
		t.Fatal(err)
	}
	return &tes.Violation{ID: 42, ReportID: f.ReportID, Plate: f.Plate, Speed: f.Speed, SpeedLimit: f.SpeedLimit,
		Location: f.Location, ObservedAt: f.ObservedAt, ReceivedAt: now.Add(-time.Minute).Add(123456 * time.Microsecond),
		ReportedBy: f.User, Suite: tes.SuiteTLS, SigVerified: true, Status: tes.StatusApproved, DecidedBy: "officer1",
		DecidedAt: now.Add(-time.Second), PointsApplied: 50,
		Evidence: tes.Evidence{Signed: signed, Signature: sig, KeyFingerprint: ca.Fingerprint(fx.dev.RawSubjectPublicKeyInfo),
			PublicKey: fx.dev.Raw, DeviceID: f.DeviceID}}
}

func (fx *fixture) mustBuild(t testing.TB, v *tes.Violation) []byte {
	t.Helper()
	b, err := evidence.Build(v, fx.ca.Cert, fx.signer, now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyTLS(t *testing.T) {
	fx := newFixture(t)
	file := fx.mustBuild(t, fx.tlsViolation(t))
	res, err := evidence.Verify(file, evidence.VerifyOptions{CAHash: fx.ca.Hash()})
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, file)
	}
	if res.ViolationID != 42 || res.Suite != tes.SuiteTLS || res.CAHash != fx.ca.Hash() || len(res.Proved) != 3 {
		t.Fatalf("result = %+v", res)
	}
	all := strings.Join(res.Proved, "\n")
	for _, want := range []string{"sealed this file", "Device 175afcce80f2d9d1 of user police1", "plate=34ABC123", "speed=120 km/h", "observed_at=2026-03-14T09:26:53Z"} {
		if !strings.Contains(all, want) {
			t.Errorf("Proved does not say %q:\n%s", want, all)
		}
	}
	if _, err := evidence.Verify(file, evidence.VerifyOptions{CAHash: "sha256:" + strings.Repeat("0", 64)}); !isField(err, "seal.certificate_chain[1]") {
		t.Errorf("another expected CA hash: %v", err)
	}
}

func isField(err error, field string) bool {
	var ve *evidence.VerifyError
	return errors.As(err, &ve) && ve.Field == field
}

// TestVerifyEveryByteFlip flips each byte of an exported file in turn
// (one bit, then all bits): every change fails, and the error names the
// field the byte belongs to.
func TestVerifyEveryByteFlip(t *testing.T) {
	fx := newFixture(t)
	file := fx.mustBuild(t, fx.tlsViolation(t))
	want := map[string]string{ // a byte inside these values must be named so
		`"plate": "34A`:     "violation.plate",
		`"speed": 12`:       "violation.speed",
		`"status": "APPR`:   "violation.status",
		`"decided_by": "of`: "violation.decided_by",
	}
	wantAt := map[int]string{}
	for marker, field := range want {
		i := bytes.Index(file, []byte(marker))
		if i < 0 {
			t.Fatalf("marker %q not in the file", marker)
		}
		wantAt[i+len(marker)-1] = field
	}
	sigAt := bytes.Index(file, []byte(`"signature": "`)) + len(`"signature": "`) + 5 // the device's
	wantAt[sigAt] = "evidence.signature"
	sealSigAt := bytes.LastIndex(file, []byte(`"signature": "`)) + len(`"signature": "`) + 5
	wantAt[sealSigAt] = "seal.signature"
	certAt := bytes.Index(file, []byte(`"certificate_chain": [`)) + len(`"certificate_chain": [`) + 12
	wantAt[certAt] = "evidence.certificate_chain[0]"

	for _, mask := range []byte{0x01, 0xff} {
		for i := range file {
			b := bytes.Clone(file)
			b[i] ^= mask
			_, err := evidence.Verify(b, evidence.VerifyOptions{})
			var ve *evidence.VerifyError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Fatalf("byte %d (%q) ^ %#x: Verify = %v, want a VerifyError naming a field", i, file[i], mask, err)
			}
			if ve.Field == "file" && i > 1 && i < len(file)-2 { // the outer braces and their newlines are the file's own
				t.Errorf("byte %d (%q) ^ %#x: named only %q: %v", i, file[i], mask, ve.Field, ve)
			}
			if f, ok := wantAt[i]; ok && ve.Field != f {
				t.Errorf("byte %d (%q) ^ %#x: field %q, want %q (%v)", i, file[i], mask, ve.Field, f, ve)
			}
		}
	}
}

func TestVerifyTES1(t *testing.T) {
	fx := newFixture(t)
	key, err := legacy.GenerateRSAKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	wire := bytes.Repeat([]byte{0xab}, 48)
	sig, _ := legacy.Sign(key, wire)
	v := &tes.Violation{ID: 7, ReportID: "01a21a91-3713-746d-81f7-0f3139c91ba2", Plate: "06XYZ99", Speed: 87, ReceivedAt: now,
		ReportedBy: "police1", Suite: tes.SuiteTES1, SigVerified: true, Status: tes.StatusPending,
		Evidence: tes.Evidence{Signed: wire, Signature: sig, KeyFingerprint: ca.Fingerprint(spki), PublicKey: spki}}
	file := fx.mustBuild(t, v)
	res, err := evidence.Verify(file, evidence.VerifyOptions{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	not := strings.Join(res.NotProved, "\n")
	if !strings.Contains(not, "cannot be tied to the ciphertext") || !strings.Contains(not, "without the session key") {
		t.Errorf("NotProved does not say the plaintext cannot be tied to the ciphertext:\n%s", not)
	}
	if !strings.Contains(strings.Join(res.Proved, "\n"), "RSA-2048") {
		t.Errorf("Proved = %v", res.Proved)
	}

	// A forged RSA signature, sealed by the officer all the same, fails.
	v.Evidence.Signature = bytes.Clone(sig)
	v.Evidence.Signature[10] ^= 1
	if _, err := evidence.Verify(fx.mustBuild(t, v), evidence.VerifyOptions{}); !isField(err, "evidence.signature") {
		t.Errorf("forged TES/1 signature: %v, want evidence.signature", err)
	}
}

func TestVerifyRefusesWhatTheDeviceDidNotSign(t *testing.T) {
	fx := newFixture(t)
	// The officer seals a record whose plate the device did not sign: the
	// seal holds, the device signature exposes it.
	v := fx.tlsViolation(t)
	v.Plate = "34ABC124"
	if _, err := evidence.Verify(fx.mustBuild(t, v), evidence.VerifyOptions{}); !isField(err, "violation.plate") {
		t.Errorf("plate not signed by the device: %v, want violation.plate", err)
	}
	// A certificate from another CA.
	other := newFixture(t)
	v = fx.tlsViolation(t)
	v.Evidence.PublicKey = other.dev.Raw
	if _, err := evidence.Verify(fx.mustBuild(t, v), evidence.VerifyOptions{}); !isField(err, "evidence.certificate_chain[0]") {
		t.Errorf("device certificate of another CA: %v", err)
	}
	// A report received after the device certificate expired.
	v = fx.tlsViolation(t)
	v.ReceivedAt = fx.dev.NotAfter.Add(time.Hour)
	if _, err := evidence.Verify(fx.mustBuild(t, v), evidence.VerifyOptions{}); !isField(err, "evidence.certificate_chain[0]") {
		t.Errorf("expired device certificate: %v", err)
	}
}

func TestVerifyUnsigned(t *testing.T) {
	fx := newFixture(t)
	v := &tes.Violation{ID: 1, Plate: "AB1", Speed: 60, ReceivedAt: now, ReportedBy: "x", Suite: tes.SuiteTES1, Status: tes.StatusPending}
	res, err := evidence.Verify(fx.mustBuild(t, v), evidence.VerifyOptions{})
	if err != nil || len(res.Proved) != 1 || !strings.Contains(strings.Join(res.NotProved, " "), "carries no signature") {
		t.Fatalf("unsigned: %+v, %v", res, err)
	}
}

type oneViolation struct{ v *tes.Violation }

func (o oneViolation) Violation(_ context.Context, id int64) (*tes.Violation, error) {
	if id != o.v.ID {
		return nil, tes.Errorf(tes.ENOTFOUND, "Violation %d not found.", id)
	}
	return o.v, nil
}

func TestExporter(t *testing.T) {
	fx := newFixture(t)
	v := fx.tlsViolation(t)
	e := &evidence.Exporter{Violations: oneViolation{v}, CA: fx.ca.Cert, Signer: fx.signer, Now: func() time.Time { return now }}
	b, err := e.Export(context.Background(), 42)
	if err != nil {
		t.Fatal(err)
	}
	if want := fx.mustBuild(t, v); !bytes.Equal(b, want) {
		t.Error("Export differs from Build")
	}
	if _, err := e.Export(context.Background(), 43); tes.ErrorCode(err) != tes.ENOTFOUND {
		t.Errorf("unknown id: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	fx := newFixture(t)
	v := fx.tlsViolation(t)
	st := evidence.Describe(v)
	if !st.Signed || !st.Verified || !st.FieldsMatch || st.Problem != "" || st.DeviceID != "175afcce80f2d9d1" ||
		!strings.Contains(st.Certificate, "device 175afcce80f2d9d1 (user police1)") || st.ExportFileName != "violation-42-evidence.json" {
		t.Fatalf("Describe = %+v", st)
	}
	v.Speed = 121
	if st := evidence.Describe(v); !st.Verified || st.FieldsMatch || !strings.Contains(st.Problem, "speed") {
		t.Errorf("changed speed: %+v", st)
	}
	v = fx.tlsViolation(t)
	v.Evidence.Signature[0] ^= 1
	if st := evidence.Describe(v); st.Verified || st.Problem == "" {
		t.Errorf("bad signature: %+v", st)
	}
	if st := evidence.Describe(&tes.Violation{Suite: tes.SuiteTES1}); st.Signed || st.Verified {
		t.Errorf("unsigned: %+v", st)
	}
}
