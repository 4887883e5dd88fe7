// Package tes1 speaks TES/1, the original report's wire protocol, byte for
// byte (see docs/protocol.md and ../shared/spec/tes1-wire.md): the server
// sends HANDSHAKE with its RSA key; the client sends SESSION (an RSA-OAEP
// wrapped DES key and its own RSA key), LOGIN (DES-encrypted credentials) and
// DATA (DES-encrypted reports signed with the client key); every request gets
// {"type": "OK"|"ERROR", "payload": "<text>"}.
//
// Unlike the original, the server parses a stream of JSON values (split and
// coalesced TCP segments both work), bounds every message and every read,
// refuses unsigned, forged and replayed reports, and answers every request it
// can parse.
package tes1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Message types and reply statuses, as the original spells them.
const (
	TypeHandshake = "HANDSHAKE"
	TypeSession   = "SESSION"
	TypeLogin     = "LOGIN"
	TypeData      = "DATA"
	StatusOK      = "OK"
	StatusError   = "ERROR"
)

// Reply texts. The first five are the original's; clients match on them.
const (
	ReplySessionReady = "Session Ready"
	ReplyLoginOK      = "Login Successful"
	ReplyQueued       = "Message Queued for Processing"
	ReplyBadLogin     = "Invalid Credentials"
	ReplyUnauthorized = "Unauthorized"
	ReplyProcessing   = "Processing Error"

	// TES additions, same shape.
	ReplyMalformed       = "Malformed Message"
	ReplyTooLarge        = "Message Too Large"
	ReplyUnknownType     = "Unknown Message Type"
	ReplySessionRequired = "Session Required"
	ReplySessionExists   = "Session Already Established"
	ReplySessionFailed   = "Session Failed"
	ReplySessionReplay   = "Session Replay Detected"
	ReplyReplay          = "Replay Detected"
	ReplySigMissing      = "Signature Required"
	ReplySigInvalid      = "Invalid Signature"
	ReplyTooManyAttempts = "Too Many Attempts"
	ReplyBusy            = "Server Busy, Retry Later"
	ReplyUnavailable     = "Server Unavailable, Retry Later"
	ReplyShuttingDown    = "Server Shutting Down"
)

// Message is one TES/1 message. Payload is kept raw: it is a JSON string for
// every message the original sends, but SESSION's payload is itself
// JSON-encoded inside that string, and the report's text shows it as an
// object, so the server accepts either.
type Message struct {
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	Signature *string         `json:"signature"`
}

// PayloadString returns the payload as a string, or false if it is not a
// JSON string.
func (m *Message) PayloadString() (string, bool) {
	if len(m.Payload) == 0 || m.Payload[0] != '"' {
		return "", false
	}
	if plain, ok := plainString(m.Payload); ok {
		return string(plain), true
	}
	var s string
	if err := json.Unmarshal(m.Payload, &s); err != nil {
		return "", false
	}
	return s, true
}

// ParseMessage decodes one message frame: a JSON object with a string
// "type". The frame must be valid UTF-8.
func ParseMessage(frame []byte) (*Message, error) {
	if !utf8.Valid(frame) {
		return nil, fmt.Errorf("tes1: message is not UTF-8")
	}
	if m, ok := parseCanonical(frame); ok {
		return m, nil
	}
	var m Message
	if err := json.Unmarshal(frame, &m); err != nil {
		return nil, fmt.Errorf("tes1: %w", err)
	}
	if m.Type == "" {
		return nil, fmt.Errorf("tes1: message has no type")
	}
	return &m, nil
}

// parseCanonical decodes frame without encoding/json when it has exactly
// the shape AppendMessage and the original's json.dumps write,
// {"type": S, "payload": S[, "signature": S]}, the type and signature
// hold no escape and the payload no escape but \", \\ and \n, and no
// string holds a control character: every DATA message of a TES/1 client
// (hex payload and signature) and of a TLS-suite device (a report's JSON
// as the payload), and the HANDSHAKE and SESSION messages (PEM keys). Anything else returns false, and ParseMessage decodes it
// with encoding/json; FuzzParseMessage checks that both give the same
// Message. frame is valid UTF-8.
func parseCanonical(frame []byte) (*Message, bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"type": `))
	if !ok {
		return nil, false
	}
	typ, rest, escaped, ok := cutSimpleString(rest)
	if !ok || escaped || len(typ) == 2 {
		return nil, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`, "payload": `)); !ok {
		return nil, false
	}
	payload, rest, _, ok := cutSimpleString(rest)
	if !ok {
		return nil, false
	}
	m := &Message{Type: string(typ[1 : len(typ)-1]), Payload: json.RawMessage(bytes.Clone(payload))}
	if sig, ok := bytes.CutPrefix(rest, []byte(`, "signature": `)); ok {
		var s []byte
		if s, rest, escaped, ok = cutSimpleString(sig); !ok || escaped {
			return nil, false
		}
		str := string(s[1 : len(s)-1])
		m.Signature = &str
	}
	if len(rest) != 1 || rest[0] != '}' {
		return nil, false
	}
	return m, true
}

// cutSimpleString cuts a JSON string from the front of b whose only
// escapes are \", \\ and \n (a PEM key's line breaks) and which holds no
// control character: quoted is it with its quotes, escaped whether it
// holds an escape. ok is false for any other string, or none.
func cutSimpleString(b []byte) (quoted, rest []byte, escaped, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false, false
	}
	for i := 1; i < len(b); i++ {
		i += stringStop(b[i:])
		if i == len(b) {
			break
		}
		switch b[i] {
		case '"':
			return b[:i+1], b[i+1:], escaped, true
		case '\\':
			if i+1 == len(b) || b[i+1] != '"' && b[i+1] != '\\' && b[i+1] != 'n' {
				return nil, nil, false, false
			}
			escaped = true
			i++
		default: // a control character
			return nil, nil, false, false
		}
	}
	return nil, nil, false, false
}

// plainString returns the contents of the JSON string quoted when it needs
// no decoding beyond \", \\ and \n: valid UTF-8 with no other escape and
// no control character.
func plainString(quoted []byte) ([]byte, bool) {
	q, rest, escaped, ok := cutSimpleString(quoted)
	if !ok || len(rest) != 0 || !utf8.Valid(q) {
		return nil, false
	}
	q = q[1 : len(q)-1]
	if !escaped {
		return q, true
	}
	out := make([]byte, 0, len(q))
	for i := 0; i < len(q); i++ {
		c := q[i]
		if c == '\\' {
			i++ // cutSimpleString let only \", \\ and \n through
			if c = q[i]; c == 'n' {
				c = '\n'
			}
		}
		out = append(out, c)
	}
	return out, true
}

// AppendMessage appends the message exactly as the original's Python
// json.dumps writes it: keys in the order type, payload[, signature],
// separators ", " and ": ", non-ASCII escaped as \uXXXX; "signature" is
// omitted when empty.
func AppendMessage(dst []byte, typ, payload, signature string) []byte {
	dst = append(dst, `{"type": `...)
	dst = AppendPyString(dst, typ)
	dst = append(dst, `, "payload": `...)
	dst = AppendPyString(dst, payload)
	if signature != "" {
		dst = append(dst, `, "signature": `...)
		dst = AppendPyString(dst, signature)
	}
	return append(dst, '}')
}

// AppendPyString appends s as a JSON string the way Python's json.dumps
// (ensure_ascii=True) does, so that our bytes equal the original's.
func AppendPyString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"':
			dst = append(dst, '\\', '"')
		case r == '\\':
			dst = append(dst, '\\', '\\')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\b':
			dst = append(dst, '\\', 'b')
		case r == '\f':
			dst = append(dst, '\\', 'f')
		case r < 0x20 || r > 0x7e && r != 0x7f:
			if r == utf8.RuneError {
				r = 0xfffd
			}
			if r > 0xffff { // surrogate pair, as Python writes it
				r -= 0x10000
				hi, lo := 0xd800+(r>>10), 0xdc00+(r&0x3ff)
				dst = append(dst, '\\', 'u', hex[hi>>12], hex[hi>>8&15], hex[hi>>4&15], hex[hi&15])
				r = lo
			}
			dst = append(dst, '\\', 'u', hex[r>>12], hex[r>>8&15], hex[r>>4&15], hex[r&15])
		default:
			dst = append(dst, byte(r))
		}
	}
	return append(dst, '"')
}

// appendPyInt appends an integer as Python writes it.
func appendPyInt(dst []byte, n int) []byte { return strconv.AppendInt(dst, int64(n), 10) }
