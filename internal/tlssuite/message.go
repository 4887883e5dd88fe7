// Package tlssuite is TES over TLS 1.3 with enrolled devices: the modern
// suite next to TES/1, on its own port (`tes officer --listen-tls`, default
// :9443), using crypto/tls only.
//
// # Handshake
//
// TLS 1.3 only, Ed25519 certificates from the officer's CA (internal/ca),
// session tickets off, and one of two application protocols chosen by ALPN:
//
//   - "tes-tls/1": mutual authentication. The client presents the device
//     certificate it got at enrolment; the server verifies the chain to its
//     CA and then looks the device up in the store, refusing an unknown
//     certificate, a revoked device and a user who is disabled or may not
//     report. The server speaks first, a HANDSHAKE message, so a client
//     learns of a refusal in Dial (in TLS 1.3 a client's handshake ends
//     before the server has checked its certificate).
//   - "tes-enroll/1": no client certificate. The client verifies the
//     server's chain against the CA hash in its join token before sending
//     anything, then sends one ENROLL request: the token ID, a PKCS#10 CSR
//     for an Ed25519 key it generated, and a proof of the token's secret
//     bound to this TLS connection (see internal/enroll). The reply carries
//     the device certificate.
//
// # Messages
//
// Inside TLS the messages are TES/1's JSON objects, framed and written by
// internal/tes1 ({"type", "payload"[, "signature"]}; one reply
// {"type": "OK"|"ERROR", "payload": text} per request, with TES/1's reply
// texts), with no DES and no session key:
//
//	server  HANDSHAKE  payload: JSON {"suite": "tes-tls/1", "device": ID, "user": NAME}
//	client  DATA       payload: the report as TES/1 plaintext JSON (report_id
//	                   required); signature: standard base64 of the device's
//	                   Ed25519 signature over the report's canonical
//	                   encoding (internal/evidence)
//	client  STATUS     payload: JSON {"report_ids": [...]}; OK payload: JSON {"reports": [...]}
//	client  ENROLL     payload: JSON {"token_id", "csr", "proof"} (base64);
//	                   OK payload: JSON {"device_id", "user", "certificate", "ca"} (base64 DER)
package tlssuite

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/tes1"
)

// ALPN protocol names.
const (
	ALPNReport = "tes-tls/1"
	ALPNEnroll = "tes-enroll/1"
)

// Message types added by the suite; the others are TES/1's.
const (
	TypeEnroll = "ENROLL"
)

// Reply texts the suite adds to TES/1's.
const (
	ReplyInvalidToken   = "Invalid Join Token"
	ReplyTokenExpired   = "Join Token Expired"
	ReplyTokenUsed      = "Join Token Already Used"
	ReplyUserNotAllowed = "User May Not Report"
	ReplyBadRequest     = "Invalid Certificate Request"
)

// MaxMessage bounds one message inside TLS. A DATA message is under 1 KiB;
// an ENROLL under 2 KiB.
const MaxMessage = 16 << 10

// handshakePayload is the server's first message on a report connection.
type handshakePayload struct {
	Suite  string `json:"suite"`
	Device string `json:"device"`
	User   string `json:"user"`
}

// enrollRequest is the ENROLL payload.
type enrollRequest struct {
	TokenID string `json:"token_id"`
	CSR     []byte `json:"csr"`
	Proof   []byte `json:"proof"`
}

// enrollReply is the ENROLL OK payload.
type enrollReply struct {
	DeviceID    string `json:"device_id"`
	User        string `json:"user"`
	Certificate []byte `json:"certificate"`
	CA          []byte `json:"ca"`
}

// statusRequest and statusReply are the STATUS payloads.
type statusRequest struct {
	ReportIDs []string `json:"report_ids"`
}

type statusReply struct {
	Reports []tes.ReportStatus `json:"reports"`
}

// dataError is a refused DATA request: the reply text to send.
type dataError struct{ reply string }

func (e *dataError) Error() string { return "tlssuite: " + e.reply }

// ReplyText returns the reply text for an error from ParseData ("" if err
// is not one).
func ReplyText(err error) string {
	var de *dataError
	if errors.As(err, &de) {
		return de.reply
	}
	return ""
}

// ParseData decodes a DATA message: the report (validated and normalised
// by tes1.ParseReport) and the 64-byte signature. Every error carries the
// reply text to send (ReplyText). It does not check the signature: that
// needs the device, see Server.
func ParseData(m *tes1.Message) (*tes.Report, []byte, error) {
	if m.Type != tes1.TypeData {
		return nil, nil, &dataError{tes1.ReplyUnknownType}
	}
	if m.Signature == nil || *m.Signature == "" {
		return nil, nil, &dataError{tes1.ReplySigMissing}
	}
	if len(*m.Signature) != base64.StdEncoding.EncodedLen(64) {
		return nil, nil, &dataError{tes1.ReplySigInvalid}
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(*m.Signature)
	if err != nil || len(sig) != 64 {
		return nil, nil, &dataError{tes1.ReplySigInvalid}
	}
	plain, ok := m.PayloadString()
	if !ok {
		return nil, nil, &dataError{tes1.ReplyMalformed}
	}
	r, err := tes1.ParseReport([]byte(plain))
	if err != nil {
		return nil, nil, &dataError{tes.ErrorMessage(err)}
	}
	if r.ReportID == "" {
		return nil, nil, &dataError{"Invalid report_id: a signed report must carry one."}
	}
	return r, sig, nil
}

// parseEnroll decodes an ENROLL payload, bounding every field.
func parseEnroll(m *tes1.Message) (*enrollRequest, error) {
	s, ok := m.PayloadString()
	if !ok {
		return nil, errors.New("payload is not a string")
	}
	var req enrollRequest
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if len(req.TokenID) != 16 || len(req.CSR) == 0 || len(req.CSR) > 4096 || len(req.Proof) != 64 {
		return nil, errors.New("token_id, csr or proof missing or of the wrong size")
	}
	return &req, nil
}
