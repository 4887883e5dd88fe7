package officerui_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"sync"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/evidence"
	"github.com/tes-traffic/tes/internal/legacy"
)

// testPKI is the officer's CA and signing key, the enrolled devices and
// the TES/1 client keys behind the tests' and the demo's reports. The keys
// and signatures are real, so that the process page's evidence.Describe and
// the exported file's evidence.Verify check them for real. There is one per
// test binary; its certificates are valid from 30 days before it was made.
type testPKI struct {
	ca     *ca.CA
	signer *ca.Signer

	mu      sync.Mutex
	devices map[[2]string]*testDevice // by device id and user
	units   map[string]tes.Evidence   // TES/1 evidence by unit
}

type testDevice struct {
	key  ed25519.PrivateKey
	cert *x509.Certificate
}

var pki = sync.OnceValue(func() *testPKI {
	issued := time.Now().Add(-30 * 24 * time.Hour)
	root, err := ca.New(nil, issued)
	if err != nil {
		panic(err)
	}
	root.Now = func() time.Time { return issued }
	signer, err := root.NewSigner()
	if err != nil {
		panic(err)
	}
	return &testPKI{ca: root, signer: signer, devices: map[[2]string]*testDevice{}, units: map[string]tes.Evidence{}}
})

// exporter builds evidence files from s, sealed at now().
func (p *testPKI) exporter(s interface {
	Violation(context.Context, int64) (*tes.Violation, error)
}, now func() time.Time) *evidence.Exporter {
	return &evidence.Exporter{Violations: s, CA: p.ca.Cert, Signer: p.signer, Now: now}
}

// device returns device id enrolled for user, enrolling it at first use.
func (p *testPKI) device(id, user string) *testDevice {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.devices[[2]string{id, user}]; d != nil {
		return d
	}
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		panic(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		panic(err)
	}
	cert, err := p.ca.IssueDevice(csr, id, user)
	if err != nil {
		panic(err)
	}
	d := &testDevice{key: key, cert: cert}
	p.devices[[2]string{id, user}] = d
	return d
}

// signTLS makes r a report sent over the TLS suite by device id of r.User:
// it sets the suite, a report ID derived from r when it has none (so that
// seeded data stays the same from run to run), observed_at in whole UTC
// seconds as the wire carries it, and the Evidence the server stores.
func (p *testPKI) signTLS(r *tes.Report, deviceID string) {
	d := p.device(deviceID, r.User)
	r.Suite = tes.SuiteTLS
	if r.ReportID == "" {
		sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%d|%s|%d", deviceID, r.Plate, r.Speed, r.Location, r.ObservedAt.UnixNano()))
		sum[6] = sum[6]&0x0f | 0x40
		sum[8] = sum[8]&0x3f | 0x80
		r.ReportID = fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	}
	if !r.ObservedAt.IsZero() {
		r.ObservedAt = time.Unix(r.ObservedAt.Unix(), 0).UTC()
	}
	signed, sig, err := evidence.Sign(d.key, evidence.FromReport(r, deviceID))
	if err != nil {
		panic(fmt.Sprintf("sign %+v: %v", r, err))
	}
	r.Evidence = tes.Evidence{Signed: signed, Signature: sig, KeyFingerprint: ca.Fingerprint(d.cert.RawSubjectPublicKeyInfo),
		PublicKey: d.cert.Raw, DeviceID: deviceID}
}

// tes1Evidence is what the TES/1 suite stores for a report of unit: the
// unit's RSA signature over a DATA message's IV and DES ciphertext, and its
// self-asserted public key. It is made once per unit: RSA key generation is
// slow, and the bytes need not differ between reports for Describe.
func (p *testPKI) tes1Evidence(unit string) tes.Evidence {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev, ok := p.units[unit]; ok {
		return ev
	}
	key, err := legacy.GenerateRSAKey(nil)
	if err != nil {
		panic(err)
	}
	c, err := legacy.NewSessionCipher([]byte("demo-key"))
	if err != nil {
		panic(err)
	}
	wire, err := c.Seal(nil, []byte(`{"plate": "demo", "speed": 0, "unit": "`+unit+`"}`))
	if err != nil {
		panic(err)
	}
	sig, err := legacy.Sign(key, wire)
	if err != nil {
		panic(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(err)
	}
	ev := tes.Evidence{Signed: wire, Signature: sig, KeyFingerprint: legacy.Fingerprint(spki), PublicKey: spki}
	p.units[unit] = ev
	return ev
}
