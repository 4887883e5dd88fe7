package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
	"github.com/tes-traffic/tes/internal/legacy"
)

// VerifyError is why an evidence file failed: the field (a JSON path such
// as "violation.plate" or "evidence.certificate_chain[0]") and what is
// wrong with it.
type VerifyError struct {
	Field string
	Why   string
}

func (e *VerifyError) Error() string { return e.Field + ": " + e.Why }

func fail(field, format string, args ...any) error {
	return &VerifyError{Field: field, Why: fmt.Sprintf(format, args...)}
}

// VerifyOptions are the optional checks of Verify.
type VerifyOptions struct {
	// CAHash, if set, is the officer's CA hash ("sha256:..."), obtained
	// from the officer by a channel the verifier trusts; a file under
	// another CA then fails.
	CAHash string
}

// Result is what a verified file proved.
type Result struct {
	ViolationID int64
	Suite       string
	Algorithm   string
	CAHash      string
	CASubject   string
	ExportedAt  time.Time
	// Proved and NotProved are sentences for people, in order.
	Proved    []string
	NotProved []string
}

// Verify checks an evidence file with nothing but its bytes: no database,
// no server, no network. It returns what was proved, or a *VerifyError
// naming the first field that fails.
func Verify(data []byte, opt VerifyOptions) (*Result, error) {
	if len(data) > MaxFileSize {
		return nil, fail("file", "larger than %d bytes", MaxFileSize)
	}
	f, err := decodeFile(data)
	if err != nil {
		return nil, err
	}
	if f.Format != FileFormat {
		return nil, fail("format", "%q is not %q", f.Format, FileFormat)
	}

	// The trust anchor, and the officer's seal over the whole file.
	root, err := parseChainRoot("seal.certificate_chain", f.Seal.CertificateChain)
	if err != nil {
		return nil, err
	}
	caHash := ca.Hash(root)
	if opt.CAHash != "" && !strings.EqualFold(opt.CAHash, caHash) {
		return nil, fail("seal.certificate_chain[1]", "the CA is %s, not the expected %s", caHash, opt.CAHash)
	}
	exported, err := parseTime("seal.exported_at", f.Seal.ExportedAt)
	if err != nil {
		return nil, err
	}
	signerCert, err := parseCert("seal.certificate_chain[0]", f.Seal.CertificateChain[0])
	if err != nil {
		return nil, err
	}
	if err := ca.VerifySigner(signerCert, root, exported); err != nil {
		return nil, fail("seal.certificate_chain[0]", "not an officer signing certificate of this CA valid at %s: %v", f.Seal.ExportedAt, err)
	}
	if f.Seal.Algorithm != AlgEd25519 {
		return nil, fail("seal.algorithm", "%q is not %q", f.Seal.Algorithm, AlgEd25519)
	}
	sealSigned, err := decodeB64("seal.signed", f.Seal.Signed)
	if err != nil {
		return nil, err
	}
	sealSig, err := decodeB64("seal.signature", f.Seal.Signature)
	if err != nil {
		return nil, err
	}
	st, stErr := decodeStatement(sealSigned)
	if VerifySignature(signerCert.PublicKey.(ed25519.PublicKey), sealSigned, sealSig) != nil {
		if stErr == nil && diffStatement(f, st) == "" {
			return nil, fail("seal.signature", "does not verify: the seal's signature was altered")
		}
		return nil, fail("seal.signed", "the seal's signature does not verify over it: it was altered")
	}
	if stErr != nil {
		return nil, fail("seal.signed", "the officer sealed something that is not a statement: %v", stErr)
	}
	if field := diffStatement(f, st); field != "" {
		return nil, fail(field, "differs from what the officer sealed: the file was altered")
	}

	res := &Result{ViolationID: f.Violation.ID, Suite: f.Violation.Suite, Algorithm: f.Evidence.Algorithm,
		CAHash: caHash, CASubject: root.Subject.CommonName, ExportedAt: exported}
	res.Proved = append(res.Proved, fmt.Sprintf(
		"The officer's signing key %s, certified by the CA %s (%q), sealed this file at %s: every field in it is exactly as the officer exported it.",
		ca.Fingerprint(signerCert.RawSubjectPublicKeyInfo), caHash, root.Subject.CommonName, f.Seal.ExportedAt))

	switch f.Evidence.Algorithm {
	case AlgEd25519:
		err = verifyTLS(f, root, res)
	case AlgRSA:
		err = verifyTES1(f, res)
	case AlgNone:
		res.NotProved = append(res.NotProved, "Who made this report: it carries no signature of a reporting unit, so only the officer's word (its seal) stands behind it.")
	default:
		err = fail("evidence.algorithm", "unknown algorithm %q", f.Evidence.Algorithm)
	}
	if err != nil {
		return nil, err
	}
	res.NotProved = append([]string{
		fmt.Sprintf("That %s is your officer's CA: compare it with the hash the officer publishes (`tes device ca` on the officer, or the CA hash in its join tokens), or pass --ca-hash.", caHash)},
		res.NotProved...)
	res.NotProved = append(res.NotProved,
		"When the officer received the report (received_at) and what became of it (status, decision, points): these are the officer's statements, covered by its seal only.",
		"That the speed was measured correctly: the signature shows who reported what, not that the measuring equipment was right.")
	return res, nil
}

// decodeFile parses data strictly and requires it to be in the exact form
// Build writes, naming the field of the first deviation.
func decodeFile(data []byte) (*File, error) {
	if k := unknownKey(data); k != "" {
		return nil, fail(k, "is not a field of %s", FileFormat)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fail(fieldAt(data, max(se.Offset-1, 0)), "not valid JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = fieldAt(data, te.Offset)
			}
			return nil, fail(field, "has the wrong type: %v", err)
		}
		return nil, fail("file", "not an evidence file: %v", err)
	}
	canon, err := encodeFile(&f)
	if err != nil {
		return nil, fail("file", "cannot be encoded: %v", err)
	}
	if !bytes.Equal(canon, data) {
		off := 0
		for off < len(canon) && off < len(data) && canon[off] == data[off] {
			off++
		}
		return nil, fail(fieldAt(data, int64(off)), "byte %d differs from the form the officer writes: the file was altered", off)
	}
	if len(f.Seal.CertificateChain) != 2 {
		return nil, fail("seal.certificate_chain", "must hold the signing and the CA certificate")
	}
	return &f, nil
}

func decodeB64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fail(field, "not standard base64: %v", err)
	}
	return b, nil
}

func parseCert(field, s string) (*x509.Certificate, error) {
	der, err := decodeB64(field, s)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fail(field, "not a certificate: %v", err)
	}
	return c, nil
}

// parseChainRoot returns chain[1], which must be a self-signed CA.
func parseChainRoot(field string, chain []string) (*x509.Certificate, error) {
	field += "[1]"
	root, err := parseCert(field, chain[1])
	if err != nil {
		return nil, err
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return nil, fail(field, "not a self-signed CA certificate")
	}
	return root, nil
}

func decodeStatement(signed []byte) (*statement, error) {
	body, ok := bytes.CutPrefix(signed, []byte(sealPrefix))
	if !ok {
		return nil, errors.New("no seal prefix")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var st statement
	if err := dec.Decode(&st); err != nil {
		return nil, err
	}
	if again, err := json.Marshal(st); err != nil || !bytes.Equal(again, body) {
		return nil, errors.New("not in canonical form")
	}
	return &st, nil
}

// diffStatement names the first field of f that differs from the sealed
// statement, "" if none.
func diffStatement(f *File, st *statement) string {
	if f.Format != st.Format {
		return "format"
	}
	if k := diffObject("violation", f.Violation, st.Violation); k != "" {
		return k
	}
	if k := diffObject("evidence", f.Evidence, st.Evidence); k != "" {
		return k
	}
	if f.Seal.ExportedAt != st.ExportedAt {
		return "seal.exported_at"
	}
	return ""
}

// diffObject compares two values field by field through their JSON form
// and returns "prefix.field" of the first difference.
func diffObject(prefix string, a, b any) string {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var ma, mb map[string]json.RawMessage
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	for _, k := range allowedKeys[prefix] {
		if bytes.Equal(ma[k], mb[k]) {
			continue
		}
		var la, lb []json.RawMessage
		if json.Unmarshal(ma[k], &la) == nil && json.Unmarshal(mb[k], &lb) == nil {
			for i := range min(len(la), len(lb)) {
				if !bytes.Equal(la[i], lb[i]) {
					return fmt.Sprintf("%s.%s[%d]", prefix, k, i)
				}
			}
		}
		return prefix + "." + k
	}
	return ""
}

// verifyTLS checks a TLS-suite report: the device certificate chains to the
// CA, its key made the signature, and the signed fields are the record's.
func verifyTLS(f *File, root *x509.Certificate, res *Result) error {
	ev, v := &f.Evidence, &f.Violation
	if v.Suite != tes.SuiteTLS {
		return fail("violation.suite", "an Ed25519 signature comes with suite %q, not %q", tes.SuiteTLS, v.Suite)
	}
	if len(ev.CertificateChain) != 2 || ev.PublicKey != "" {
		return fail("evidence.certificate_chain", "must hold the device and the CA certificate (and public_key must be empty)")
	}
	if ev.CertificateChain[1] != f.Seal.CertificateChain[1] {
		return fail("evidence.certificate_chain[1]", "is not the CA that certified the seal")
	}
	received, err := parseTime("violation.received_at", v.ReceivedAt)
	if err != nil {
		return err
	}
	dev, err := parseCert("evidence.certificate_chain[0]", ev.CertificateChain[0])
	if err != nil {
		return err
	}
	id, user, err := ca.VerifyDevice(dev, root, received)
	if err != nil {
		return fail("evidence.certificate_chain[0]", "not a device certificate of this CA valid when the report was received: %v", err)
	}
	if fp := ca.Fingerprint(dev.RawSubjectPublicKeyInfo); fp != ev.KeyFingerprint {
		return fail("evidence.key_fingerprint", "%s is not the device key's fingerprint %s", ev.KeyFingerprint, fp)
	}
	signed, err := decodeB64("evidence.signed", ev.Signed)
	if err != nil {
		return err
	}
	sig, err := decodeB64("evidence.signature", ev.Signature)
	if err != nil {
		return err
	}
	if err := VerifySignature(dev.PublicKey.(ed25519.PublicKey), signed, sig); err != nil {
		return fail("evidence.signature", "does not verify with the device key over evidence.signed: %v", err)
	}
	fields, err := Decode(signed)
	if err != nil {
		return fail("evidence.signed", "not a canonical report encoding: %v", err)
	}
	if fields.DeviceID != id || fields.User != user {
		return fail("evidence.signed", "signed for device %s and user %s, but the certificate is for device %s and user %s", fields.DeviceID, fields.User, id, user)
	}
	observed, err := parseTime("violation.observed_at", v.ObservedAt)
	if err != nil {
		return err
	}
	rec := &Fields{ReportID: v.ReportID, DeviceID: v.DeviceID, User: v.ReportedBy, Plate: v.Plate, Speed: v.Speed,
		SpeedLimit: v.SpeedLimit, Location: v.Location, ObservedAt: observed}
	if k := fields.Diff(rec); k != "" {
		name := map[string]string{"user": "reported_by"}[k]
		if name == "" {
			name = k
		}
		return fail("violation."+name, "is not what the device signed")
	}
	obs := "not reported"
	if !fields.ObservedAt.IsZero() {
		obs = fields.ObservedAt.Format(time.RFC3339)
	}
	res.Proved = append(res.Proved,
		fmt.Sprintf("Device %s of user %s holds the Ed25519 key %s: the CA certified it (certificate serial %s, valid %s to %s), and the certificate was valid when the report was received (%s).",
			id, user, ev.KeyFingerprint, hex.EncodeToString(dev.SerialNumber.Bytes()), dev.NotBefore.UTC().Format(time.RFC3339), dev.NotAfter.UTC().Format(time.RFC3339), v.ReceivedAt),
		fmt.Sprintf("That key signed these facts (%s, %d bytes), and the record's fields are exactly them: report_id=%s device_id=%s user=%s plate=%s speed=%d km/h speed_limit=%d km/h location=%q observed_at=%s.",
			Version, len(signed), fields.ReportID, fields.DeviceID, fields.User, fields.Plate, fields.Speed, fields.SpeedLimit, fields.Location, obs))
	res.NotProved = append(res.NotProved,
		"That the device was still trusted after the report: a later revocation is not in this file; the officer's device list (tes device list) has it.")
	return nil
}

// verifyTES1 checks a TES/1 report's RSA signature over its ciphertext.
func verifyTES1(f *File, res *Result) error {
	ev, v := &f.Evidence, &f.Violation
	if v.Suite != tes.SuiteTES1 {
		return fail("violation.suite", "an RSA signature comes with suite %q, not %q", tes.SuiteTES1, v.Suite)
	}
	if len(ev.CertificateChain) != 0 {
		return fail("evidence.certificate_chain", "TES/1 keys have no certificate; it must be empty")
	}
	spki, err := decodeB64("evidence.public_key", ev.PublicKey)
	if err != nil {
		return err
	}
	k, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return fail("evidence.public_key", "not a SubjectPublicKeyInfo: %v", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return fail("evidence.public_key", "key is %T, not RSA", k)
	}
	if fp := ca.Fingerprint(spki); fp != ev.KeyFingerprint {
		return fail("evidence.key_fingerprint", "%s is not the public key's fingerprint %s", ev.KeyFingerprint, fp)
	}
	signed, err := decodeB64("evidence.signed", ev.Signed)
	if err != nil {
		return err
	}
	sig, err := decodeB64("evidence.signature", ev.Signature)
	if err != nil {
		return err
	}
	if len(signed) < 16 || len(signed)%8 != 0 {
		return fail("evidence.signed", "%d bytes is not an 8-byte IV and whole DES blocks", len(signed))
	}
	if err := legacy.Verify(pub, signed, sig); err != nil {
		return fail("evidence.signature", "does not verify with the public key over evidence.signed: %v", err)
	}
	res.Proved = append(res.Proved, fmt.Sprintf(
		"The holder of the RSA-%d key %s made the RSASSA-PKCS1-v1_5 SHA-256 signature over the %d signed bytes: the DATA message's 8-byte IV and DES ciphertext, as the server received them.",
		pub.N.BitLen(), ev.KeyFingerprint, len(signed)))
	res.NotProved = append(res.NotProved,
		"That the plaintext fields (report_id, plate, speed, speed_limit, location, observed_at) are what that ciphertext holds: TES/1 encrypts with a per-session DES key that the server never stores, so without the session key they cannot be tied to the ciphertext. They are the officer's statement, covered by its seal only.",
		"Who holds the RSA key: TES/1 client keys are self-asserted, certified by no CA and bound to no device; the user name is the one that logged in on that connection.")
	return nil
}
