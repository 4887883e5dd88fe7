package tes1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// stringStopRef is stringStop one byte at a time.
func stringStopRef(b []byte) int {
	for i, c := range b {
		if c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}

// TestStringStop puts every byte value at every offset of strings of every
// length up to 24, over backgrounds that sit next to the flagged ranges
// (0x20 just above the controls, 0x21 and 0x5b/0x5d beside the quote and
// the backslash, 0x80 and 0xff with the high bit set), alone and after a
// second stop byte, and checks the word-at-a-time scan against the plain
// loop.
func TestStringStop(t *testing.T) {
	for _, bg := range []byte{'a', '0', 0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff, 0x01} {
		for n := 0; n <= 24; n++ {
			b := make([]byte, n)
			for pos := 0; pos < n; pos++ {
				for v := 0; v < 256; v++ {
					for i := range b {
						b[i] = bg
					}
					b[pos] = byte(v)
					if got, want := stringStop(b), stringStopRef(b); got != want {
						t.Fatalf("stringStop(%q) = %d, want %d", b, got, want)
					}
					if pos+1 < n {
						b[pos+1] = '"'
						if got, want := stringStop(b), stringStopRef(b); got != want {
							t.Fatalf("stringStop(%q) = %d, want %d", b, got, want)
						}
					}
				}
			}
		}
	}
}

// refFrameReader is FrameReader.Next as it was before the string scan went
// word at a time: every byte through the state machine. FuzzFrameReader
// holds the fast reader to it, frame for frame and error for error.
type refFrameReader struct {
	r     *bufio.Reader
	max   int
	buf   []byte
	stack []byte
}

func newRefFrameReader(r io.Reader, max int) *refFrameReader {
	return &refFrameReader{r: bufio.NewReaderSize(r, 4096), max: max}
}

func (f *refFrameReader) Next() ([]byte, error) {
	f.buf = f.buf[:0]
	for {
		c, err := f.r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			continue
		}
		if c != '{' {
			return nil, fmt.Errorf("%w: expected '{', got %q", ErrMalformed, c)
		}
		f.buf = append(f.buf, c)
		break
	}
	stack := append(f.stack[:0], '}')
	inString, escaped := false, false
	for {
		chunk, err := f.r.Peek(max(1, f.r.Buffered()))
		if err != nil && len(chunk) == 0 {
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		for i, c := range chunk {
			switch {
			case inString:
				if escaped {
					escaped = false
				} else if c == '\\' {
					escaped = true
				} else if c == '"' {
					inString = false
				}
			case c == '"':
				inString = true
			case c == '{' || c == '[':
				if len(stack) >= maxDepth {
					return nil, fmt.Errorf("%w: nested deeper than %d", ErrMalformed, maxDepth)
				}
				stack = append(stack, c+2)
			case c == '}' || c == ']':
				if c != stack[len(stack)-1] {
					return nil, fmt.Errorf("%w: unbalanced %q", ErrMalformed, c)
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					if len(f.buf)+i+1 > f.max {
						return nil, ErrTooLarge
					}
					f.buf = append(f.buf, chunk[:i+1]...)
					f.r.Discard(i + 1)
					f.stack = stack
					return f.buf, nil
				}
			}
		}
		if len(f.buf)+len(chunk) > f.max {
			return nil, ErrTooLarge
		}
		f.buf = append(f.buf, chunk...)
		f.r.Discard(len(chunk))
	}
}

func BenchmarkStringStop(b *testing.B) {
	hex := make([]byte, 768)
	for i := range hex {
		hex[i] = "0123456789abcdef"[i%16]
	}
	hex = append(hex, '"')
	b.SetBytes(int64(len(hex)))
	for _, c := range []struct {
		name string
		f    func([]byte) int
	}{{"words", stringStop}, {"bytes", stringStopRef}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if c.f(hex) != len(hex)-1 {
					b.Fatal("wrong stop")
				}
			}
		})
	}
}

// BenchmarkFrameReader splits a stream of DATA messages the shape our
// clients send (hex payload and signature), with the word-at-a-time reader
// and the byte-at-a-time one.
func BenchmarkFrameReader(b *testing.B) {
	hex := func(n int) string {
		s := make([]byte, n)
		for i := range s {
			s[i] = "0123456789abcdef"[i*7%16]
		}
		return string(s)
	}
	msg := `{"type": "DATA", "payload": "` + hex(208) + `", "signature": "` + hex(512) + `"}`
	var stream []byte
	for range 64 {
		stream = append(stream, msg...)
	}
	b.SetBytes(int64(len(stream)))
	for _, c := range []struct {
		name string
		open func(io.Reader) interface{ Next() ([]byte, error) }
	}{
		{"words", func(r io.Reader) interface{ Next() ([]byte, error) } { return NewFrameReader(r, 0) }},
		{"bytes", func(r io.Reader) interface{ Next() ([]byte, error) } { return newRefFrameReader(r, DefaultMaxMessage) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := bytes.NewReader(stream)
			for b.Loop() {
				r.Reset(stream)
				fr := c.open(r)
				for n := 0; ; n++ {
					if _, err := fr.Next(); err == io.EOF && n == 64 {
						break
					} else if err != nil {
						b.Fatal(n, err)
					}
				}
			}
		})
	}
}
