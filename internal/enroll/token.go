// Package enroll implements device enrolment for the TLS suite, after
// `kubeadm join`: an administrator creates a single-use, expiring join
// token (`tes device add`); a device redeems it once to have its own
// Ed25519 key certified by the officer's CA.
//
// # Join token
//
//	tes-join.<ca-hash>.<token-id>.<secret>.<expiry>[@<host>:<port>]
//
//	ca-hash   64 lower-case hex digits: SHA-256 of the CA certificate's
//	          SubjectPublicKeyInfo (the "sha256:..." CA hash without prefix)
//	token-id  16 lower-case hex digits (8 random bytes); public; becomes
//	          the device ID
//	secret    43 characters, unpadded base64url of 32 random bytes
//	expiry    unix seconds, decimal, no sign or leading zero
//	addr      optional: where the officer's TLS suite listens
//
// Parse accepts exactly this form and nothing else (no other case, no
// padding, no spaces), so one token has one spelling.
//
// # What the store keeps
//
// Not the secret and not a hash an attacker could replay: the verifier, the
// Ed25519 public key whose private key is derived from the secret
// (seed = SHA-256("tes-join-v1 proof key" || secret)). It is one-way like a
// hash, and a device proves the secret by signing with the derived key, so
// a copy of the database cannot enroll anything.
//
// # Proof
//
// After the client has checked the server's certificate chain against the
// CA hash (nothing is sent before), it signs, with the derived key, the
// length-prefixed transcript
//
//	"tes-enroll-v1" || token-id || TLS exporter || SHA-256(CSR DER)
//
// where the exporter is 32 bytes of the connection's keying material
// (RFC 8446 section 7.5, label "EXPORTER-tes-enroll-v1"). The proof is bound
// to this TLS connection and to this CSR: relayed to another connection or
// attached to another key, it does not verify.
package enroll

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Prefix starts every join token.
const Prefix = "tes-join."

// ExporterLabel is the TLS exporter label of the enrolment proof.
const ExporterLabel = "EXPORTER-tes-enroll-v1"

// ExporterLen is the number of exported bytes the proof covers.
const ExporterLen = 32

// MaxTokenLen bounds what Parse reads.
const MaxTokenLen = 512

// Token is a parsed join token.
type Token struct {
	CAHash  string // "sha256:" + 64 hex digits
	ID      string // 16 hex digits
	Secret  [32]byte
	Expires time.Time // whole seconds, UTC
	Addr    string    // host:port of the TLS suite; "" when not given
}

// ErrMalformed is returned (wrapped) by Parse for anything that is not a
// join token.
var ErrMalformed = errors.New("enroll: not a join token")

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// Parse decodes a join token, strictly. Errors wrap ErrMalformed and say
// which part is wrong, never echoing the secret.
func Parse(s string) (*Token, error) {
	if len(s) > MaxTokenLen {
		return nil, malformed("too long")
	}
	if !strings.HasPrefix(s, Prefix) {
		return nil, malformed(`it does not start with "tes-join."`)
	}
	body, addr, hasAddr := strings.Cut(s[len(Prefix):], "@")
	parts := strings.Split(body, ".")
	if len(parts) != 4 {
		return nil, malformed("want four dot-separated parts after tes-join")
	}
	t := &Token{}
	if !isLowerHex(parts[0], 64) {
		return nil, malformed("the CA hash must be 64 lower-case hex digits")
	}
	t.CAHash = "sha256:" + parts[0]
	if !isLowerHex(parts[1], 16) {
		return nil, malformed("the token ID must be 16 lower-case hex digits")
	}
	t.ID = parts[1]
	if len(parts[2]) != 43 {
		return nil, malformed("the secret must be 43 base64url characters")
	}
	sec, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(sec) != 32 {
		return nil, malformed("the secret is not base64url of 32 bytes")
	}
	copy(t.Secret[:], sec)
	exp := parts[3]
	if len(exp) == 0 || len(exp) > 12 || exp[0] == '0' || strings.Trim(exp, "0123456789") != "" {
		return nil, malformed("the expiry must be unix seconds")
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return nil, malformed("the expiry must be unix seconds")
	}
	t.Expires = time.Unix(n, 0).UTC()
	if hasAddr {
		if err := checkAddr(addr); err != nil {
			return nil, malformed(err.Error())
		}
		t.Addr = addr
	}
	return t, nil
}

// checkAddr accepts host:port with a DNS name, an IPv4 address or a
// bracketed IPv6 address and a port 1-65535.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return errors.New("the address must be host:port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return errors.New("the address has no valid port")
	}
	if strings.Contains(host, ":") {
		if ip := net.ParseIP(host); ip == nil || "["+host+"]:"+port != addr {
			return errors.New("the address has an invalid IPv6 host")
		}
		return nil
	}
	if len(host) > 253 {
		return errors.New("the address host is too long")
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return errors.New("the address host may hold only letters, digits, dots and dashes")
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// String encodes t in the form Parse reads.
func (t *Token) String() string {
	var b strings.Builder
	b.WriteString(Prefix)
	b.WriteString(strings.TrimPrefix(t.CAHash, "sha256:"))
	b.WriteByte('.')
	b.WriteString(t.ID)
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(t.Secret[:]))
	b.WriteByte('.')
	b.WriteString(strconv.FormatInt(t.Expires.Unix(), 10))
	if t.Addr != "" {
		b.WriteByte('@')
		b.WriteString(t.Addr)
	}
	return b.String()
}

// Redacted is the token with its secret hidden, for logs and messages.
func (t *Token) Redacted() string {
	return fmt.Sprintf("%s%s.%s.<secret>.%d", Prefix, strings.TrimPrefix(t.CAHash, "sha256:")[:12]+"…", t.ID, t.Expires.Unix())
}

// Generate makes a new token with a random ID and secret. rand must be a
// cryptographic source (crypto/rand.Reader).
func Generate(rand io.Reader, caHash, addr string, expires time.Time) (*Token, error) {
	if !strings.HasPrefix(caHash, "sha256:") || !isLowerHex(caHash[7:], 64) {
		return nil, fmt.Errorf("enroll: CA hash %q is not sha256:<64 hex digits>", caHash)
	}
	if addr != "" {
		if err := checkAddr(addr); err != nil {
			return nil, fmt.Errorf("enroll: %s: %v", addr, err)
		}
	}
	var b [8 + 32]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return nil, err
	}
	t := &Token{CAHash: caHash, ID: hex.EncodeToString(b[:8]), Expires: time.Unix(expires.Unix(), 0).UTC(), Addr: addr}
	copy(t.Secret[:], b[8:])
	return t, nil
}

// proofKey derives the Ed25519 key that proves knowledge of the secret.
func (t *Token) proofKey() ed25519.PrivateKey {
	h := sha256.New()
	h.Write([]byte("tes-join-v1 proof key"))
	h.Write(t.Secret[:])
	return ed25519.NewKeyFromSeed(h.Sum(nil))
}

// Verifier is what the store keeps for t: the derived public key.
func (t *Token) Verifier() []byte {
	return []byte(t.proofKey().Public().(ed25519.PublicKey))
}

// Transcript is the byte string the proof signs; see the package doc.
func Transcript(tokenID string, exporter, csrDER []byte) []byte {
	sum := sha256.Sum256(csrDER)
	var out []byte
	for _, f := range [][]byte{[]byte("tes-enroll-v1"), []byte(tokenID), exporter, sum[:]} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out
}

// Prove signs the transcript of this connection's exporter and the CSR.
func (t *Token) Prove(exporter, csrDER []byte) []byte {
	return ed25519.Sign(t.proofKey(), Transcript(t.ID, exporter, csrDER))
}

// VerifyProof checks a proof against the stored verifier.
func VerifyProof(verifier []byte, tokenID string, exporter, csrDER, proof []byte) bool {
	if len(verifier) != ed25519.PublicKeySize || len(proof) != ed25519.SignatureSize || len(exporter) != ExporterLen {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(verifier), Transcript(tokenID, exporter, csrDER), proof)
}
