package tes1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ingest"
)

// Pipeliner is an Ingester that can queue an item now and be waited on
// later (internal/ingest.Batcher). With one, the DATA messages a client sends
// without waiting for each reply (pipelining) are checked as they arrive,
// committed together, and answered in order once committed; a client that
// waits for each reply, like the original, sees no difference.
type Pipeliner interface {
	Enqueue(ctx context.Context, item *tes.IngestItem) (*ingest.Ticket, error)
}

// MaxPipeline bounds the replies one connection may owe; a server stops
// reading the connection until they are sent.
const MaxPipeline = 64

// ReplyQueue holds the replies one connection owes, in request order:
// reports waiting for their commit, and replies decided at once (a refusal
// queued behind reports). Both protocol servers use it for pipelining
// clients. It is not safe for concurrent use: it belongs to the goroutine
// serving the connection.
type ReplyQueue struct {
	pending []pendingReply
	buf     []byte
}

type pendingReply struct {
	ticket       *ingest.Ticket // nil when status and text are the reply
	item         *tes.IngestItem
	start        time.Time
	status, text string
}

// Outcome turns a committed (or failed, err != nil) report into its reply;
// start is when its request was read.
type Outcome func(item *tes.IngestItem, err error, start time.Time) (status, text string)

// Len is the number of replies owed.
func (q *ReplyQueue) Len() int { return len(q.pending) }

// Due reports whether the owed replies should be sent now: the client has
// nothing more buffered in fr (it is waiting for them), or the window is
// full. Until then its reports, and other connections', gather in the
// same commit.
func (q *ReplyQueue) Due(fr *FrameReader) bool {
	return len(q.pending) > 0 && (fr.Buffered() == 0 || len(q.pending) >= MaxPipeline)
}

// Reply owes a reply decided now.
func (q *ReplyQueue) Reply(status, text string) {
	q.pending = append(q.pending, pendingReply{status: status, text: text})
}

// Report owes the reply to a report queued for commit with ticket t.
func (q *ReplyQueue) Report(t *ingest.Ticket, item *tes.IngestItem, start time.Time) {
	q.pending = append(q.pending, pendingReply{ticket: t, item: item, start: start})
}

// Flush waits for each owed report's commit, turns it into a reply with
// outcome, and sends every owed reply, in order, with one call to write.
// Every ticket is waited for even if nothing can be written, so that no
// commit is left without its outcome being recorded.
func (q *ReplyQueue) Flush(outcome Outcome, write func([]byte) error) error {
	if len(q.pending) == 0 {
		return nil
	}
	q.buf = q.buf[:0]
	for i := range q.pending {
		p := &q.pending[i]
		if p.ticket != nil {
			p.status, p.text = outcome(p.item, p.ticket.Wait(context.Background()), p.start)
		}
		q.buf = AppendMessage(q.buf, p.status, p.text, "")
		*p = pendingReply{}
	}
	q.pending = q.pending[:0]
	if cap(q.buf) > 64<<10 { // do not keep a burst's buffer on an idle connection
		defer func() { q.buf = nil }()
	}
	return write(q.buf)
}

// Exchange is one pipelined request: Msg is the whole message as
// AppendMessage builds it; Pipeline fills in the reply and its latency.
type Exchange struct {
	Msg          []byte
	Status, Text string
	Latency      time.Duration // from the write that carried Msg to its reply
}

// Pipeline sends the messages of xs on conn keeping at most window of them
// unanswered, and reads their replies, in order, with fr (the connection's
// frame reader, so that nothing it buffered is lost). Messages are written
// in bursts: up to the window, then again once half of it is answered. A
// window of 1 is the original request-reply exchange. It stops at the first transport error, returning
// how many exchanges completed; deadline bounds every read and write.
func Pipeline(conn net.Conn, fr *FrameReader, xs []Exchange, window int, deadline func() time.Time) (int, error) {
	window = max(1, min(window, MaxPipeline))
	var buf []byte
	sentAt := make([]time.Time, len(xs))
	sent, done := 0, 0
	for done < len(xs) {
		// Refill in bursts, once half the window is answered: one write
		// carries many messages, and the server sees them together.
		if sent < len(xs) && (sent-done <= window/2 || sent == done) {
			buf = buf[:0]
			for sent < len(xs) && sent-done < window {
				buf = append(buf, xs[sent].Msg...)
				sent++
			}
			now := time.Now()
			for i := done; i < sent; i++ {
				if sentAt[i].IsZero() {
					sentAt[i] = now
				}
			}
			conn.SetWriteDeadline(deadline())
			if _, err := conn.Write(buf); err != nil {
				return done, err
			}
		}
		conn.SetReadDeadline(deadline())
		frame, err := fr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("server closed the connection: %w", err)
			}
			return done, err
		}
		m, err := ParseMessage(frame)
		if err != nil {
			return done, fmt.Errorf("bad reply: %w", err)
		}
		x := &xs[done]
		x.Status = m.Type
		x.Text, _ = m.PayloadString()
		x.Latency = time.Since(sentAt[done])
		done++
	}
	return done, nil
}
