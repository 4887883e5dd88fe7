package tes1

import (
	"crypto/rsa"
	"sync"

	"github.com/tes-traffic/tes/internal/legacy"
)

// clientKey is a client's public key as its SESSION presented it, parsed
// once and shared by every session that presents the same PEM text: a unit
// reconnects with the same key many times a day.
type clientKey struct {
	pub  *rsa.PublicKey
	spki []byte // the DER SubjectPublicKeyInfo, stored with each report
	fp   string // legacy.Fingerprint(spki)

	once sync.Once // makes ver at the first DATA of any of the key's sessions
	ver  *legacy.Verifier
	err  error
}

// verifier is the key's Verifier: its Montgomery constants are about a
// third of what crypto/rsa spends on each verification, so they are made
// once per key, not once per report.
func (k *clientKey) verifier() (*legacy.Verifier, error) {
	k.once.Do(func() { k.ver, k.err = legacy.NewVerifier(k.pub) })
	return k.ver, k.err
}

// The cache's bounds. A 2048-bit key's PEM text is about 450 bytes and a
// 4096-bit one's about 800; longer text (ParsePublicKeyPEM takes up to
// 16 KiB, surrounding white space included) is parsed every time and not
// kept, so an entry (text, parsed key, DER, Montgomery constants) stays
// under 5 KiB and the whole cache under 20 MiB, whatever clients send.
const (
	clientKeyCacheMax    = 4096
	clientKeyCacheMaxPEM = 1 << 10
)

// clientKeyCache maps PEM text to its parsed key. Only keys that parse,
// from text of at most clientKeyCacheMaxPEM bytes, are kept; when full, an
// arbitrary key is dropped for each new one, so a client presenting ever
// new keys cannot grow it, only evict.
type clientKeyCache struct {
	mu   sync.Mutex
	keys map[string]*clientKey
	max  int
}

// get returns pemText's key, parsing it (with legacy.ParsePublicKeyPEM's
// checks) when it is not cached.
func (kc *clientKeyCache) get(pemText string) (*clientKey, error) {
	kc.mu.Lock()
	k := kc.keys[pemText]
	kc.mu.Unlock()
	if k != nil {
		return k, nil
	}
	pub, spki, err := legacy.ParsePublicKeyPEM(pemText)
	if err != nil {
		return nil, err
	}
	k = &clientKey{pub: pub, spki: spki, fp: legacy.Fingerprint(spki)}
	if len(pemText) > clientKeyCacheMaxPEM {
		return k, nil
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if kc.keys == nil {
		kc.keys = make(map[string]*clientKey)
	}
	if prev := kc.keys[pemText]; prev != nil { // parsed meanwhile by another session
		return prev, nil
	}
	if len(kc.keys) >= max(1, kc.max) {
		for old := range kc.keys { // map order: an arbitrary key
			delete(kc.keys, old)
			break
		}
	}
	kc.keys[pemText] = k
	return k, nil
}

// len is the number of keys cached.
func (kc *clientKeyCache) len() int {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return len(kc.keys)
}
