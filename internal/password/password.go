// Package password hashes and verifies user passwords with argon2id
// (RFC 9106) and a per-user random salt, in the PHC string format
// "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>".
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters. Default follows the OWASP password
// storage recommendation (19 MiB, 2 passes, 1 lane): about 25 ms per hash on
// this project's reference machine, slow for an attacker, bearable for a login.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// Default is the cost used for new hashes.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// ErrMalformed is returned for a stored hash that is not a PHC argon2id string.
var ErrMalformed = errors.New("password: malformed hash")

// Hash returns the PHC-format argon2id hash of pw under a fresh salt.
func Hash(pw string) (string, error) { return HashWith(pw, Default) }

// HashWith is Hash with explicit parameters.
func HashWith(pw string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded, comparing in constant time.
// needsRehash is true when encoded used weaker parameters than Default.
func Verify(pw, encoded string) (ok, needsRehash bool, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	ok = subtle.ConstantTimeCompare(got, key) == 1
	return ok, p.Memory < Default.Memory || p.Time < Default.Time, nil
}

// dummy is a valid hash used to spend the same time on unknown users.
var dummy, _ = Hash("tes-dummy-password-for-timing")

// Burn spends the time of one verification; call it when the user does not
// exist so that response time does not tell which names are real.
func Burn(pw string) { _, _, _ = Verify(pw, dummy) }

func decode(s string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformed
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, ErrMalformed
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, ErrMalformed
	}
	if p.Memory < 8*1024 || p.Memory > 1<<21 || p.Time < 1 || p.Time > 10 || p.Threads < 1 {
		return p, nil, nil, ErrMalformed
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, ErrMalformed
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}

// Generate returns a random password of 20 characters from an alphabet
// without look-alike characters (about 110 bits).
func Generate() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	for i := range b {
		b[i] = alphabet[randIndex(len(alphabet))]
	}
	return string(b)
}

func randIndex(n int) int {
	var b [1]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		if int(b[0]) < 256-256%n {
			return int(b[0]) % n
		}
	}
}
