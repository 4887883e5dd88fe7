package legacy_test

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// testdataDir is the module's shared testdata directory, seen from this package.
const testdataDir = "../../testdata"

func mustReadFile(tb testing.TB, rel string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, filepath.FromSlash(rel)))
	if err != nil {
		tb.Fatalf("read test data: %v", err)
	}
	return b
}

func mustReadJSON(tb testing.TB, rel string, v any) {
	tb.Helper()
	if err := json.Unmarshal(mustReadFile(tb, rel), v); err != nil {
		tb.Fatalf("decode %s: %v", rel, err)
	}
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatalf("decode hex %.20q: %v", s, err)
	}
	return b
}

// interopKey is one RSA key of testdata/legacy/pycryptodome_interop.json.
type interopKey struct {
	PrivateDERPKCS1Hex string `json:"private_der_pkcs1_hex"`
	PublicPEMSPKI      string `json:"public_pem_spki"`
}

// interopVectors mirrors testdata/legacy/pycryptodome_interop.json.
type interopVectors struct {
	ServerRSA      interopKey `json:"server_rsa"`
	ClientRSA      interopKey `json:"client_rsa"`
	OAEPSHA1DESKey []struct {
		DESKey string `json:"des_key"`
		CT     string `json:"ct"`
	} `json:"oaep_sha1_des_key"`
	SessionDESKey string `json:"session_des_key"`
	DESCBC        []struct {
		Key    string `json:"key"`
		PT     string `json:"pt"`
		PTText string `json:"pt_text"`
		Wire   string `json:"wire"`
	} `json:"des_cbc_pkcs7_iv_prefixed"`
	DESCBCMustReject []struct {
		Key          string `json:"key"`
		Wire         string `json:"wire"`
		RawLastBlock string `json:"raw_last_block"`
		Expect       string `json:"expect"`
	} `json:"des_cbc_pkcs7_must_reject"`
	Signatures []struct {
		Msg     string `json:"msg"`
		Sig     string `json:"sig"`
		Valid   bool   `json:"valid"`
		Comment string `json:"comment"`
	} `json:"pkcs1v15_sha256_client_sigs"`
	StorageDriversEnc struct {
		KeyASCII string         `json:"key_ascii"`
		KeyHex   string         `json:"key_hex"`
		Records  map[string]int `json:"records"`
		JSON     string         `json:"json"`
		File     string         `json:"file"`
	} `json:"storage_drivers_enc"`
	WireMessages map[string]string `json:"wire_messages"`
}

func mustInterop(tb testing.TB) *interopVectors {
	tb.Helper()
	var v interopVectors
	mustReadJSON(tb, "legacy/pycryptodome_interop.json", &v)
	return &v
}

func mustPKCS1Key(tb testing.TB, k interopKey) *rsa.PrivateKey {
	tb.Helper()
	priv, err := x509.ParsePKCS1PrivateKey(mustHex(tb, k.PrivateDERPKCS1Hex))
	if err != nil {
		tb.Fatalf("parse PKCS#1 private key: %v", err)
	}
	return priv
}
