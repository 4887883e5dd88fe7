package tes1

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"

	"github.com/tes-traffic/tes/internal/legacy"
)

func TestClientKeyCache(t *testing.T) {
	pems := make([]string, 3)
	keys := make([]*rsa.PrivateKey, 3)
	for i := range pems {
		k, err := legacy.GenerateRSAKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i], pems[i] = k, legacy.MarshalPublicKeyPEM(&k.PublicKey)
	}
	kc := clientKeyCache{max: 2}

	// A key is parsed once, and what is cached is the key presented.
	a, err := kc.get(pems[0])
	if err != nil {
		t.Fatal(err)
	}
	_, spki, _ := legacy.ParsePublicKeyPEM(pems[0])
	if !a.pub.Equal(&keys[0].PublicKey) || a.fp != legacy.Fingerprint(spki) || string(a.spki) != string(spki) {
		t.Fatalf("cached key does not match the PEM: fp %s", a.fp)
	}
	if again, _ := kc.get(pems[0]); again != a {
		t.Fatal("the same PEM text was parsed again")
	}
	// The same key in other PEM text (the original's line endings) is
	// parsed on its own, to the same fingerprint.
	crlf, err := kc.get(strings.ReplaceAll(pems[0], "\n", "\r\n"))
	if err != nil || crlf == a || crlf.fp != a.fp {
		t.Fatalf("CRLF PEM: %v, same entry %v, fp %s", err, crlf == a, crlf.fp)
	}

	// Long text (here a key padded with white space) is parsed, not kept.
	padded := pems[0] + strings.Repeat(" ", clientKeyCacheMaxPEM)
	p1, err := kc.get(padded)
	if err != nil || p1.fp != a.fp {
		t.Fatalf("padded PEM: %v", err)
	}
	if p2, _ := kc.get(padded); p2 == p1 {
		t.Fatal("a PEM text over the size limit was cached")
	}

	// Refused text is refused every time and never cached.
	n := kc.len()
	for _, bad := range []string{"", "not a key", strings.Replace(pems[1], "PUBLIC KEY", "RSA PUBLIC KEY", 2), pems[1] + pems[2]} {
		if _, err := kc.get(bad); err == nil {
			t.Errorf("%.30q: accepted", bad)
		}
	}
	if kc.len() != n {
		t.Fatalf("refused keys were cached: %d entries, had %d", kc.len(), n)
	}

	// Bounded: new keys evict, and every lookup still gives the right key.
	for range 3 {
		for i, p := range pems {
			k, err := kc.get(p)
			if err != nil || !k.pub.Equal(&keys[i].PublicKey) {
				t.Fatalf("key %d: %v", i, err)
			}
			if kc.len() > 2 {
				t.Fatalf("%d keys cached, limit 2", kc.len())
			}
		}
	}

	// The verifier is made once and shared by concurrent sessions.
	k, _ := kc.get(pems[2])
	msg := []byte("iv and ciphertext")
	sig, err := legacy.Sign(keys[2], msg)
	if err != nil {
		t.Fatal(err)
	}
	vers := make([]*legacy.Verifier, 8)
	var wg sync.WaitGroup
	for i := range vers {
		wg.Go(func() {
			v, err := k.verifier()
			if err != nil {
				t.Error(err)
				return
			}
			if err := v.Verify(msg, sig); err != nil {
				t.Error(err)
			}
			vers[i] = v
		})
	}
	wg.Wait()
	for _, v := range vers[1:] {
		if v != vers[0] {
			t.Fatal("a key's verifier was made more than once")
		}
	}
	if other, _ := kc.get(pems[0]); other.pub.Equal(k.pub) {
		t.Fatal("two keys share an entry")
	} else if v, _ := other.verifier(); v.Verify(msg, sig) == nil {
		t.Fatal("key 0's verifier accepts key 2's signature")
	}
}
