package tes1

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time ("SWAR") constants: one byte repeated across a uint64.
const (
	swarOnes  = 0x0101010101010101
	swarHighs = 0x8080808080808080
)

// stringStop returns the index of the first byte of b that ends a run of
// plain JSON string contents: '"', '\\' or a control character (< 0x20);
// len(b) if there is none.
//
// A TES/1 DATA message is mostly two long hex strings, and the frame
// reader and the canonical-shape parser both walk them to find where they
// end; this looks at eight bytes per step instead of one. For each word it
// flags the bytes equal to '"' or '\\' (a zero byte in w XOR the repeated
// character) and those below 0x20, with the classic has-zero and has-less
// tests: (x - ones*n) &^ x & highs. Their only false flags lie above a true
// one, so the lowest flag of any word is exact.
func stringStop(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q := w ^ (swarOnes * '"')
		s := w ^ (swarOnes * '\\')
		m := (q-swarOnes)&^q | (s-swarOnes)&^s | (w-swarOnes*0x20)&^w
		if m &= swarHighs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}
