package legacy_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

// Tests against byte-exact output of the original pycryptodome implementation
// (testdata/legacy/pycryptodome_interop.json).

func TestInteropOAEPKeyTransport(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	server := mustPKCS1Key(t, v.ServerRSA)
	if len(v.OAEPSHA1DESKey) != 3 {
		t.Fatalf("have %d OAEP vectors, want 3", len(v.OAEPSHA1DESKey))
	}
	for _, tc := range v.OAEPSHA1DESKey {
		t.Run(tc.DESKey, func(t *testing.T) {
			t.Parallel()
			got, err := legacy.DecryptKey(server, mustHex(t, tc.CT))
			if err != nil {
				t.Fatalf("DecryptKey: %v", err)
			}
			if want := mustHex(t, tc.DESKey); !bytes.Equal(got, want) {
				t.Fatalf("DecryptKey = %x, want %x", got, want)
			}
		})
	}
}

func TestInteropSessionCipher(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	if len(v.DESCBC) != 8 {
		t.Fatalf("have %d DES-CBC vectors, want 8", len(v.DESCBC))
	}
	for _, tc := range v.DESCBC {
		t.Run(tc.PTText, func(t *testing.T) {
			t.Parallel()
			c := mustSessionCipher(t, mustHex(t, tc.Key))
			wire, pt := mustHex(t, tc.Wire), mustHex(t, tc.PT)
			if string(pt) != tc.PTText {
				t.Fatalf("vector pt %q != pt_text %q", pt, tc.PTText)
			}
			got, err := c.Open(wire)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("Open = %q, want %q", got, pt)
			}
			// The IV is the only randomness: replaying it must reproduce pycryptodome's bytes.
			sealed, err := c.Seal(bytes.NewReader(wire[:8]), pt)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !bytes.Equal(sealed, wire) {
				t.Fatalf("Seal = %x, want %x", sealed, wire)
			}
		})
	}
}

func TestInteropSessionCipherMustReject(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	if len(v.DESCBCMustReject) != 5 {
		t.Fatalf("have %d must-reject vectors, want 5", len(v.DESCBCMustReject))
	}
	for _, tc := range v.DESCBCMustReject {
		t.Run(tc.Wire, func(t *testing.T) {
			t.Parallel()
			var want error
			switch {
			case strings.HasPrefix(tc.Expect, "padding error"):
				want = legacy.ErrPadding
			case strings.HasPrefix(tc.Expect, "length error"):
				want = legacy.ErrCiphertext
			default:
				t.Fatalf("unknown expectation %q", tc.Expect)
			}
			c := mustSessionCipher(t, mustHex(t, tc.Key))
			wire := mustHex(t, tc.Wire)
			if tc.RawLastBlock != "" {
				// Confirm the vector is what it claims: the bad block really decrypts to it.
				raw := make([]byte, len(wire)-8)
				c.DecryptCBC(raw, wire[:8], wire[8:])
				if got := hex.EncodeToString(raw[len(raw)-8:]); got != tc.RawLastBlock {
					t.Fatalf("raw last block = %s, want %s", got, tc.RawLastBlock)
				}
			}
			got, err := c.Open(wire)
			if !errors.Is(err, want) {
				t.Fatalf("Open = %x, %v; want %v (%s)", got, err, want, tc.Expect)
			}
			if got != nil {
				t.Fatalf("Open returned plaintext %x with an error", got)
			}
		})
	}
}

func TestInteropSignatures(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	client := mustPKCS1Key(t, v.ClientRSA)
	if len(v.Signatures) != 3 {
		t.Fatalf("have %d signature vectors, want 3", len(v.Signatures))
	}
	for _, tc := range v.Signatures {
		t.Run(tc.Comment, func(t *testing.T) {
			t.Parallel()
			msg, sig := mustHex(t, tc.Msg), mustHex(t, tc.Sig)
			err := legacy.Verify(&client.PublicKey, msg, sig)
			if tc.Valid {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				// PKCS#1 v1.5 is deterministic: our signature must be pycryptodome's.
				got, err := legacy.Sign(client, msg)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				if !bytes.Equal(got, sig) {
					t.Fatalf("Sign = %x, want %x", got, sig)
				}
			} else if !errors.Is(err, rsa.ErrVerification) {
				t.Fatalf("Verify = %v, want rsa.ErrVerification", err)
			}
		})
	}
}

func TestInteropPublicKeyPEM(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	for _, tc := range []struct {
		name        string
		key         interopKey
		fingerprint string // openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64
	}{
		{"server", v.ServerRSA, "SHA256:u6Pks04amxVfP9e5RYas5iDdq4i7NrrdzgLV/DqzpxA"},
		{"client", v.ClientRSA, "SHA256:4Ypbv6PrUAWfiQJqdRbEikfeJjIH9GR/vsnu0gNUujw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			priv := mustPKCS1Key(t, tc.key)
			if got := legacy.MarshalPublicKeyPEM(&priv.PublicKey); got != tc.key.PublicPEMSPKI {
				t.Fatalf("MarshalPublicKeyPEM =\n%q\nwant\n%q", got, tc.key.PublicPEMSPKI)
			}
			pub, der, err := legacy.ParsePublicKeyPEM(tc.key.PublicPEMSPKI)
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			if !pub.Equal(&priv.PublicKey) {
				t.Fatal("parsed public key differs from the private key's")
			}
			if got := legacy.Fingerprint(der); got != tc.fingerprint {
				t.Fatalf("Fingerprint = %s, want %s", got, tc.fingerprint)
			}
		})
	}
}

// TestInteropDriversFile proves the original server's data/drivers.enc can be migrated.
func TestInteropDriversFile(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	s := v.StorageDriversEnc
	if s.KeyASCII != "STOREKEY" || hex.EncodeToString([]byte(s.KeyASCII)) != s.KeyHex {
		t.Fatalf("unexpected storage key %q / %s", s.KeyASCII, s.KeyHex)
	}
	pt, err := mustSessionCipher(t, []byte("STOREKEY")).Open(mustHex(t, s.File))
	if err != nil {
		t.Fatalf("Open drivers.enc: %v", err)
	}
	if string(pt) != s.JSON {
		t.Fatalf("drivers.enc = %q, want %q", pt, s.JSON)
	}
	var records map[string]int
	if err := json.Unmarshal(pt, &records); err != nil {
		t.Fatalf("decode records: %v", err)
	}
	if !maps.Equal(records, s.Records) {
		t.Fatalf("records = %v, want %v", records, s.Records)
	}
}

// TestInteropWireSession replays the recorded client messages through the package as the
// server would: HANDSHAKE key, SESSION -> DES key, LOGIN -> credentials, DATA -> report + signature.
func TestInteropWireSession(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	server := mustPKCS1Key(t, v.ServerRSA)

	type message struct {
		Type      string  `json:"type"`
		Payload   string  `json:"payload"`
		Signature *string `json:"signature"`
	}
	mustMessage := func(name, wantType string) message {
		t.Helper()
		raw, ok := v.WireMessages[name]
		if !ok {
			t.Fatalf("no wire message %q", name)
		}
		var m message
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Type != wantType {
			t.Fatalf("%s: type %q, want %q", name, m.Type, wantType)
		}
		return m
	}

	hs := mustMessage("handshake_server_to_client", "HANDSHAKE")
	if got := legacy.MarshalPublicKeyPEM(&server.PublicKey); hs.Payload != got {
		t.Fatalf("HANDSHAKE payload = %q, want %q", hs.Payload, got)
	}

	sess := mustMessage("session_client_to_server", "SESSION")
	var inner struct {
		EncryptedKey    string `json:"encrypted_key"`
		ClientPublicKey string `json:"client_public_key"`
	}
	if err := json.Unmarshal([]byte(sess.Payload), &inner); err != nil {
		t.Fatalf("SESSION payload: %v", err)
	}
	key, err := legacy.DecryptKey(server, mustHex(t, inner.EncryptedKey))
	if err != nil {
		t.Fatalf("SESSION DecryptKey: %v", err)
	}
	if want := mustHex(t, v.SessionDESKey); !bytes.Equal(key, want) {
		t.Fatalf("session key = %x, want %x", key, want)
	}
	clientPub, _, err := legacy.ParsePublicKeyPEM(inner.ClientPublicKey)
	if err != nil {
		t.Fatalf("SESSION client_public_key: %v", err)
	}
	if inner.ClientPublicKey != v.ClientRSA.PublicPEMSPKI {
		t.Fatal("SESSION client_public_key differs from client_rsa.public_pem_spki")
	}
	c := mustSessionCipher(t, key)

	login := mustMessage("login_client_to_server", "LOGIN")
	if login.Signature != nil {
		t.Fatal("LOGIN carries a signature; the legacy client never signs it")
	}
	creds, err := c.Open(mustHex(t, login.Payload))
	if err != nil {
		t.Fatalf("LOGIN Open: %v", err)
	}
	if want := `{"username": "admin", "password": "password"}`; string(creds) != want {
		t.Fatalf("LOGIN plaintext = %q, want %q", creds, want)
	}

	data := mustMessage("data_client_to_server", "DATA")
	wire := mustHex(t, data.Payload)
	if data.Signature == nil {
		t.Fatal("DATA has no signature")
	}
	if err := legacy.Verify(clientPub, wire, mustHex(t, *data.Signature)); err != nil {
		t.Fatalf("DATA signature: %v", err)
	}
	report, err := c.Open(wire)
	if err != nil {
		t.Fatalf("DATA Open: %v", err)
	}
	if want := `{"plate": "34ABC123", "speed": 120}`; string(report) != want {
		t.Fatalf("DATA plaintext = %q, want %q", report, want)
	}
}
