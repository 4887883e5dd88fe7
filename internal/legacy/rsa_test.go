package legacy_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

// syntheticPEM encodes an RSA public key with an n-bit modulus and exponent e. The modulus is
// not a product of two primes; parsing never needs it to be.
func syntheticPEM(tb testing.TB, bits, e int) string {
	tb.Helper()
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(0x10001))
	return mustSPKIPEM(tb, &rsa.PublicKey{N: n, E: e})
}

func mustSPKIPEM(tb testing.TB, pub any) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatalf("MarshalPKIXPublicKey: %v", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestParsePublicKeyPEM(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	server := mustPKCS1Key(t, v.ServerRSA)
	serverPEM, clientPEM := v.ServerRSA.PublicPEMSPKI, v.ClientRSA.PublicPEMSPKI

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1PEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&server.PublicKey)}))
	serverDER, err := x509.MarshalPKIXPublicKey(&server.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	withHeaders := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Comment": "x"}, Bytes: serverDER}))
	// The same key with BER long-form lengths where DER needs the short form is not canonical.
	nonCanonical := append([]byte(nil), serverDER...)
	nonCanonical = bytes.Replace(nonCanonical, []byte{0x30, 0x0d, 0x06, 0x09}, []byte{0x30, 0x81, 0x0d, 0x06, 0x09}, 1)
	nonCanonical[3]++ // outer SEQUENCE length, 30 82 01 22
	nonCanonicalPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: nonCanonical}))

	for _, tc := range []struct {
		name    string
		pem     string
		wantErr string // substring; "" means accept
	}{
		{"pycryptodome server", serverPEM, ""},
		{"pycryptodome client", clientPEM, ""},
		{"trailing newline", serverPEM + "\n", ""},
		{"surrounding whitespace", "\r\n \t" + serverPEM + "\n\n ", ""},
		{"CRLF lines", strings.ReplaceAll(serverPEM, "\n", "\r\n"), ""},
		{"Go pem encoding", mustSPKIPEM(t, &server.PublicKey), ""},
		{"3072-bit", syntheticPEM(t, 3072, 65537), ""},
		{"4096-bit", syntheticPEM(t, 4096, 65537), ""},

		{"empty", "", "empty"},
		{"whitespace only", " \n\t", "empty"},
		{"two blocks", serverPEM + "\n" + clientPEM, "exactly one PEM block"},
		{"same block twice", serverPEM + "\n" + serverPEM, "exactly one PEM block"},
		{"trailing garbage", serverPEM + "\ngarbage", "after the PEM block"},
		{"trailing garbage same line", serverPEM + "garbage", "malformed"},
		{"leading garbage", "garbage\n" + serverPEM, "before the PEM block"},
		{"no END line", strings.TrimSuffix(serverPEM, "-----END PUBLIC KEY-----"), "exactly one PEM block"},
		{"bad base64", strings.Replace(serverPEM, "MIIBIjAN", "MIIB*jAN", 1), "malformed"},
		{"not PEM", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA", "exactly one PEM block"},
		{"PKCS#1 RSA PUBLIC KEY", pkcs1PEM, "PKCS#1"},
		{"private key type", strings.ReplaceAll(serverPEM, "PUBLIC KEY", "PRIVATE KEY"), "not a \"PUBLIC KEY\""},
		{"headers", withHeaders, "headers"},
		{"1024-bit", syntheticPEM(t, 1024, 65537), "1024 bits"},
		{"2047-bit", syntheticPEM(t, 2047, 65537), "2047 bits"},
		{"4097-bit", syntheticPEM(t, 4097, 65537), "4097 bits"},
		{"e=3", syntheticPEM(t, 2048, 3), "exponent is 3"},
		{"e=65539", syntheticPEM(t, 2048, 65539), "exponent"},
		{"even modulus", mustSPKIPEM(t, &rsa.PublicKey{N: new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 2047), big.NewInt(2)), E: 65537}), "even"},
		{"EC P-256", mustSPKIPEM(t, &ecKey.PublicKey), "want RSA"},
		{"Ed25519", mustSPKIPEM(t, edPub), "want RSA"},
		{"non-canonical DER", nonCanonicalPEM, "parse public key"},
		{"too long", serverPEM + strings.Repeat(" ", 16<<10), "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, der, err := legacy.ParsePublicKeyPEM(tc.pem)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParsePublicKeyPEM: %v", err)
				}
				canon, _ := x509.MarshalPKIXPublicKey(pub)
				if !bytes.Equal(der, canon) {
					t.Fatalf("returned DER %x is not the key's SPKI %x", der, canon)
				}
				if pub.E != 65537 {
					t.Fatalf("E = %d", pub.E)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error containing %q", tc.wantErr)
			}
			if pub != nil || der != nil {
				t.Fatal("returned a key along with an error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestMarshalPublicKeyPEMRoundTrip(t *testing.T) {
	t.Parallel()
	for _, bits := range []int{2048, 3072, 4096} {
		pemText := syntheticPEM(t, bits, 65537)
		pub, der, err := legacy.ParsePublicKeyPEM(pemText)
		if err != nil {
			t.Fatalf("%d: %v", bits, err)
		}
		got := legacy.MarshalPublicKeyPEM(pub)
		if strings.HasSuffix(got, "\n") || !strings.HasPrefix(got, "-----BEGIN PUBLIC KEY-----\n") {
			t.Fatalf("%d: framing wrong: %q", bits, got)
		}
		lines := strings.Split(got, "\n")
		for _, l := range lines[1 : len(lines)-2] {
			if len(l) != 64 {
				t.Fatalf("%d: body line of %d columns, want 64: %q", bits, len(l), l)
			}
		}
		// Go's encoder differs only in the final newline.
		if want := strings.TrimSuffix(pemText, "\n"); got != want {
			t.Fatalf("%d: MarshalPublicKeyPEM =\n%s\nwant\n%s", bits, got, want)
		}
		_, der2, err := legacy.ParsePublicKeyPEM(got)
		if err != nil || !bytes.Equal(der, der2) {
			t.Fatalf("%d: reparse: %v", bits, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	der := []byte("not really DER")
	sum := sha256.Sum256(der)
	got := legacy.Fingerprint(der)
	if !strings.HasPrefix(got, "SHA256:") || strings.HasSuffix(got, "=") || len(got) != len("SHA256:")+43 {
		t.Fatalf("Fingerprint = %q, want SHA256: and 43 unpadded base64 characters", got)
	}
	if legacy.Fingerprint(sum[:]) == got {
		t.Fatal("different inputs gave the same fingerprint")
	}
}

func TestGenerateRSAKey(t *testing.T) {
	t.Parallel()
	priv, err := legacy.GenerateRSAKey(nil)
	if err != nil {
		t.Fatalf("GenerateRSAKey: %v", err)
	}
	if bits := priv.N.BitLen(); bits != 2048 || priv.E != 65537 {
		t.Fatalf("key is %d bits, e=%d; want 2048, 65537", bits, priv.E)
	}
	if err := priv.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// A generated key is one the other side's parser accepts.
	pub, _, err := legacy.ParsePublicKeyPEM(legacy.MarshalPublicKeyPEM(&priv.PublicKey))
	if err != nil || !pub.Equal(&priv.PublicKey) {
		t.Fatalf("round trip through PEM: %v", err)
	}
}

func TestKeyTransport(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	server := mustPKCS1Key(t, v.ServerRSA)
	client := mustPKCS1Key(t, v.ClientRSA)
	desKey := mustHex(t, v.SessionDESKey)

	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		ct, err := legacy.EncryptKey(rand.Reader, &server.PublicKey, desKey)
		if err != nil {
			t.Fatalf("EncryptKey: %v", err)
		}
		if len(ct) != 256 {
			t.Fatalf("ciphertext is %d bytes, want 256", len(ct))
		}
		got, err := legacy.DecryptKey(server, ct)
		if err != nil || !bytes.Equal(got, desKey) {
			t.Fatalf("DecryptKey = %x, %v; want %x", got, err, desKey)
		}
		ct2, err := legacy.EncryptKey(nil, &server.PublicKey, desKey)
		if err != nil || bytes.Equal(ct, ct2) {
			t.Fatalf("second EncryptKey = %v; want a fresh ciphertext", err)
		}
	})
	t.Run("EncryptKey rejects key lengths", func(t *testing.T) {
		t.Parallel()
		for _, n := range []int{0, 7, 9, 16, 24} {
			if _, err := legacy.EncryptKey(rand.Reader, &server.PublicKey, make([]byte, n)); err == nil {
				t.Errorf("EncryptKey accepted a %d-byte key", n)
			}
		}
	})

	// Every way DecryptKey can fail gives one and the same error.
	sha1OAEP := func(msg []byte) []byte {
		ct, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &server.PublicKey, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	sha256CT, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &server.PublicKey, desKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	labelCT, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, &server.PublicKey, desKey, []byte("TES"))
	if err != nil {
		t.Fatal(err)
	}
	good := sha1OAEP(desKey)
	for _, tc := range []struct {
		name string
		priv *rsa.PrivateKey
		ct   []byte
	}{
		{"7-byte plaintext", server, sha1OAEP(desKey[:7])},
		{"9-byte plaintext", server, sha1OAEP(append(bytes.Clone(desKey), 0))},
		{"empty plaintext", server, sha1OAEP(nil)},
		{"SHA-256 OAEP", server, sha256CT},
		{"non-empty label", server, labelCT},
		{"wrong private key", client, good},
		{"flipped byte", server, func() []byte { c := bytes.Clone(good); c[100] ^= 1; return c }()},
		{"truncated", server, good[1:]},
		{"leading zero added", server, append([]byte{0}, good...)},
		{"empty", server, nil},
	} {
		t.Run("DecryptKey rejects "+tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := legacy.DecryptKey(tc.priv, tc.ct)
			if err == nil {
				t.Fatalf("DecryptKey = %x, want an error", got)
			}
			if !errors.Is(err, rsa.ErrDecryption) {
				t.Fatalf("error %v does not wrap rsa.ErrDecryption", err)
			}
			if got != nil {
				t.Fatal("returned a key along with an error")
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	v := mustInterop(t)
	client := mustPKCS1Key(t, v.ClientRSA)
	server := mustPKCS1Key(t, v.ServerRSA)
	msg := []byte("IV||ciphertext bytes of a DATA message")
	sig, err := legacy.Sign(client, msg)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if err := legacy.Verify(&client.PublicKey, msg, sig); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	verifiers := map[*rsa.PublicKey]*legacy.Verifier{}
	for _, pub := range []*rsa.PublicKey{&client.PublicKey, &server.PublicKey} {
		v, err := legacy.NewVerifier(pub)
		if err != nil {
			t.Fatalf("NewVerifier: %v", err)
		}
		verifiers[pub] = v
	}
	if err := verifiers[&client.PublicKey].Verify(msg, sig); err != nil {
		t.Fatalf("Verifier.Verify: %v", err)
	}
	n := client.PublicKey.N.FillBytes(make([]byte, client.Size()))
	ones := bytes.Repeat([]byte{0xff}, client.Size())
	for _, tc := range []struct {
		name     string
		pub      *rsa.PublicKey
		msg, sig []byte
	}{
		{"other key", &server.PublicKey, msg, sig},
		{"other message", &client.PublicKey, append(bytes.Clone(msg), 0), sig},
		{"short signature", &client.PublicKey, msg, sig[1:]},
		{"long signature", &client.PublicKey, msg, append([]byte{0}, sig...)},
		{"nil key", nil, msg, sig},
		{"signature equal to the modulus", &client.PublicKey, msg, n},
		{"signature above the modulus", &client.PublicKey, msg, ones},
		{"zero signature", &client.PublicKey, msg, make([]byte, client.Size())},
		{"empty signature", &client.PublicKey, msg, nil},
	} {
		if err := legacy.Verify(tc.pub, tc.msg, tc.sig); err == nil {
			t.Errorf("%s: Verify accepted", tc.name)
		}
		if v := verifiers[tc.pub]; v != nil {
			if err := v.Verify(tc.msg, tc.sig); !errors.Is(err, rsa.ErrVerification) {
				t.Errorf("%s: Verifier.Verify = %v, want rsa.ErrVerification", tc.name, err)
			}
		}
	}
}

func TestNewVerifierRefuses(t *testing.T) {
	t.Parallel()
	client := mustPKCS1Key(t, mustInterop(t).ClientRSA)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	even := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}
	for _, tc := range []struct {
		name string
		pub  *rsa.PublicKey
	}{
		{"nil key", nil},
		{"nil modulus", &rsa.PublicKey{E: 65537}},
		{"1024-bit modulus", &small.PublicKey},
		{"e = 3", &rsa.PublicKey{N: client.N, E: 3}},
		{"even modulus", even},
	} {
		if v, err := legacy.NewVerifier(tc.pub); err == nil || v != nil {
			t.Errorf("%s: NewVerifier = %v, %v; want an error", tc.name, v, err)
		}
	}
}
