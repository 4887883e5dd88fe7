package tes1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxMessage bounds one message. The largest legitimate TES/1 message
// (SESSION with a 4096-bit client key) is under 2 KiB.
const DefaultMaxMessage = 64 << 10

// Framing errors.
var (
	ErrTooLarge  = errors.New("tes1: message exceeds the size limit")
	ErrMalformed = errors.New("tes1: malformed message stream")
)

// FrameReader splits a byte stream into top-level JSON objects without
// decoding them, so that a message split over several TCP segments, or
// several messages in one segment, are both read correctly. It never holds
// more than max bytes of one message.
type FrameReader struct {
	r     *bufio.Reader
	max   int
	buf   []byte
	stack []byte
}

// maxDepth bounds nesting; TES/1 messages are two levels deep.
const maxDepth = 32

// NewFrameReader reads frames from r; max <= 0 means DefaultMaxMessage.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &FrameReader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// Buffered is the number of bytes already read from the stream and not yet
// returned in a frame: more than zero means the peer sent more without
// waiting.
func (f *FrameReader) Buffered() int { return f.r.Buffered() }

// Next returns the next frame: the bytes of one JSON object, from '{' to the
// matching '}'. The slice is valid until the next call. Whitespace between
// frames is skipped. It returns io.EOF at a clean end of stream,
// io.ErrUnexpectedEOF inside a frame, ErrTooLarge past the limit and
// ErrMalformed when the stream holds something other than an object.
func (f *FrameReader) Next() ([]byte, error) {
	f.buf = f.buf[:0]
	// Skip whitespace before the frame.
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
	// stack holds the closers expected, innermost last; a mismatched closer
	// or nesting deeper than maxDepth is malformed, so that what reaches the
	// JSON decoder is balanced and shallow.
	stack := append(f.stack[:0], '}')
	inString, escaped := false, false
	for {
		// Scan what is buffered in one go rather than byte by byte.
		chunk, err := f.r.Peek(max(1, f.r.Buffered()))
		if err != nil && len(chunk) == 0 {
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	scan:
		for i := 0; i < len(chunk); i++ {
			c := chunk[i]
			switch {
			case inString:
				if escaped {
					escaped = false
					continue
				}
				// Jump to the next quote or backslash (stringStop also
				// stops at a control character, which changes nothing here).
				if i += stringStop(chunk[i:]); i == len(chunk) {
					break scan
				}
				if c = chunk[i]; c == '\\' {
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
				stack = append(stack, c+2) // '{'+2 == '}', '['+2 == ']'
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
