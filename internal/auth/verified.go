package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// verifiedCache remembers, for a short time, that a user's password was
// checked against a given stored hash, so that the next sign-in with the same
// password skips argon2id.
//
// Why: a TES/1 client sends its password on every connection, and field units
// on flaky networks reconnect often; after an outage thousands reconnect at
// once, and at about 25 ms of argon2id each the server would spend minutes of
// CPU before the first report. The cache turns a repeat sign-in into one
// HMAC and a store read.
//
// What it keeps: per user name, the stored hash string the password was
// verified against and HMAC-SHA256(k, name, hash, password) under a key k
// drawn at random for this process and never written anywhere. Nothing is
// cached for a failed sign-in, and a wrong password always pays the full
// argon2id check. An entry is used only while the user's stored hash is still
// the one it was verified against, so a password change (from any node) ends
// it at once; disabled and locked accounts are refused before the cache is
// asked. The trade-off, said in docs/security.md: someone who can read this
// process's memory could test guesses for recently active users at HMAC speed
// instead of argon2id speed; --login-cache-ttl 0 turns the cache off.
type verifiedCache struct {
	key [32]byte
	ttl time.Duration
	max int

	mu sync.Mutex
	m  map[string]verifiedEntry
}

type verifiedEntry struct {
	hash    string // the stored PHC hash the password was verified against
	mac     [sha256.Size]byte
	expires time.Time
}

// newVerifiedCache returns a cache of at most max users, each entry valid for
// ttl; ttl <= 0 returns nil, which caches nothing.
func newVerifiedCache(ttl time.Duration, max int) *verifiedCache {
	if ttl <= 0 || max <= 0 {
		return nil
	}
	c := &verifiedCache{ttl: ttl, max: max, m: make(map[string]verifiedEntry)}
	if _, err := rand.Read(c.key[:]); err != nil {
		return nil // crypto/rand does not fail on supported systems; without a key, no cache
	}
	return c
}

func (c *verifiedCache) mac(name, hash, pw string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.key[:])
	// Length-prefixed so that no two (name, hash, pw) triples share an input.
	for _, s := range []string{name, hash, pw} {
		n := len(s)
		m.Write([]byte{byte(n >> 8), byte(n)})
		m.Write([]byte(s))
	}
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}

// check reports whether pw was verified for name against storedHash within
// the entry's lifetime.
func (c *verifiedCache) check(name, storedHash, pw string, now time.Time) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	e, ok := c.m[name]
	c.mu.Unlock()
	if !ok || e.hash != storedHash || !now.Before(e.expires) {
		return false
	}
	got := c.mac(name, storedHash, pw)
	return hmac.Equal(got[:], e.mac[:])
}

// remember records a successful verification.
func (c *verifiedCache) remember(name, storedHash, pw string, now time.Time) {
	if c == nil {
		return
	}
	e := verifiedEntry{hash: storedHash, mac: c.mac(name, storedHash, pw), expires: now.Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[name]; !ok && len(c.m) >= c.max {
		// Full: drop the expired entries, and if none were, one arbitrary
		// entry; a dropped user pays argon2id once more, nothing worse.
		for k, old := range c.m {
			if !now.Before(old.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[name] = e
}

// forget drops name's entry.
func (c *verifiedCache) forget(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
