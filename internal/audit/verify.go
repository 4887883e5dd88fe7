package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"math"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/ca"
)

// Kinds of damage Verify tells apart.
const (
	KindEdited     = "edited"     // an entry's fields no longer match its hash
	KindDeleted    = "deleted"    // entries are missing (a gap in seq, or the end cut off)
	KindReordered  = "reordered"  // an intact entry sits at another seq than it was written at
	KindInserted   = "inserted"   // an entry that was not written by the chain sits between two that were
	KindRewritten  = "rewritten"  // the chain differs from a signed checkpoint: hashes were recomputed
	KindCheckpoint = "checkpoint" // a checkpoint is not validly signed by a trusted key
)

// Problem is the first bad entry Verify found.
type Problem struct {
	Seq    int64  // the first bad entry's seq
	Kind   string // one of the Kind constants
	Detail string // what is wrong, for people
}

func (p *Problem) String() string { return fmt.Sprintf("seq %d: %s: %s", p.Seq, p.Kind, p.Detail) }

// Result is what Verify found.
type Result struct {
	Events            int64 // entries read
	LastSeq           int64
	Checkpoints       int   // checkpoints whose signature verified
	LastCheckpointSeq int64 // the newest seq a valid checkpoint covers
	// Uncovered is how many entries follow the last checkpoint: their
	// hashes are consistent, but nothing signed vouches for them yet.
	Uncovered int64
	Problem   *Problem // nil when the log verifies
}

// OK reports whether the log verified.
func (r *Result) OK() bool { return r.Problem == nil }

// pageSize is how many events Verify reads per query.
const pageSize = 5000

// Verify reads the whole log in seq order and checks it; see the package
// doc. trusted are the signing keys whose checkpoints count (the officer
// signing certificates); a checkpoint by any other key is a problem. The
// error is for failures to read the store only: damage is in
// Result.Problem.
func Verify(ctx context.Context, st tes.CheckpointStore, trusted []*x509.Certificate) (*Result, error) {
	res := &Result{}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	bySeq := map[int64][]*tes.Checkpoint{}
	var firstBadCP *Problem
	for _, c := range cps {
		if why := checkSignature(c, trusted); why != "" {
			if firstBadCP == nil {
				firstBadCP = &Problem{Seq: c.Seq, Kind: KindCheckpoint, Detail: fmt.Sprintf("checkpoint #%d (signed %s) %s", c.ID, c.At.Format(time.RFC3339), why)}
			}
			continue
		}
		res.Checkpoints++
		bySeq[c.Seq] = append(bySeq[c.Seq], c)
	}
	var maxCP *tes.Checkpoint
	for _, list := range bySeq {
		for _, c := range list {
			if maxCP == nil || c.Seq > maxCP.Seq {
				maxCP = c
			}
		}
	}

	w := &walker{st: st, ctx: ctx}
	var prev *tes.Event
	var goodCP int64 // the newest checkpointed seq that matched
	for {
		e, err := w.next()
		if err != nil {
			return nil, err
		}
		if e == nil {
			break
		}
		res.Events++
		if p, err := w.check(prev, e); err != nil {
			return nil, err
		} else if p != nil {
			res.Problem = p
			return res, nil
		}
		for _, c := range bySeq[e.Seq] {
			if !bytes.Equal(c.Hash, e.Hash) {
				res.Problem = &Problem{Seq: goodCP + 1, Kind: KindRewritten, Detail: fmt.Sprintf(
					"the chain's hash at seq %d is not the one checkpoint #%d signed at %s: an entry from seq %d to %d was changed and every hash after it recomputed",
					e.Seq, c.ID, c.At.Format(time.RFC3339), goodCP+1, e.Seq)}
				return res, nil
			}
			goodCP = e.Seq
		}
		prev = e
	}
	if prev != nil {
		res.LastSeq = prev.Seq
	}
	if maxCP != nil && maxCP.Seq > res.LastSeq {
		res.Problem = &Problem{Seq: res.LastSeq + 1, Kind: KindDeleted, Detail: fmt.Sprintf(
			"the log ends at seq %d, but checkpoint #%d signed seq %d at %s: entries %d to %d (at least) were deleted",
			res.LastSeq, maxCP.ID, maxCP.Seq, maxCP.At.Format(time.RFC3339), res.LastSeq+1, maxCP.Seq)}
		return res, nil
	}
	if firstBadCP != nil {
		res.Problem = firstBadCP
		return res, nil
	}
	res.LastCheckpointSeq = goodCP
	res.Uncovered = res.LastSeq - goodCP
	return res, nil
}

// checkSignature returns why c does not count ("" when it does).
func checkSignature(c *tes.Checkpoint, trusted []*x509.Certificate) string {
	var pub ed25519.PublicKey
	for _, t := range trusted {
		if bytes.Equal(t.RawSubjectPublicKeyInfo, c.PublicKey) {
			pub, _ = t.PublicKey.(ed25519.PublicKey)
		}
	}
	if pub == nil {
		return fmt.Sprintf("is signed by %s, which is not a trusted officer signing key", ca.Fingerprint(c.PublicKey))
	}
	if !ed25519.Verify(pub, CheckpointMessage(c.Seq, c.Hash, c.At), c.Signature) {
		return "has a signature that does not verify: it was altered"
	}
	return ""
}

// walker streams the log in seq order and can look ahead one entry.
type walker struct {
	st    tes.CheckpointStore
	ctx   context.Context
	buf   []*tes.Event
	after int64
	done  bool
	init  bool
}

func (w *walker) fill() error {
	if !w.init {
		w.after, w.init = math.MinInt64, true
	}
	if len(w.buf) > 1 || w.done {
		return nil
	}
	page, err := w.st.EventsAfter(w.ctx, w.after, pageSize)
	if err != nil {
		return err
	}
	if len(page) < pageSize {
		w.done = true
	}
	if len(page) > 0 {
		w.after = page[len(page)-1].Seq
	}
	w.buf = append(w.buf, page...)
	return nil
}

func (w *walker) next() (*tes.Event, error) {
	if err := w.fill(); err != nil {
		return nil, err
	}
	if len(w.buf) == 0 {
		return nil, nil
	}
	e := w.buf[0]
	w.buf = w.buf[1:]
	return e, nil
}

func (w *walker) peek() (*tes.Event, error) {
	if err := w.fill(); err != nil {
		return nil, err
	}
	if len(w.buf) == 0 {
		return nil, nil
	}
	return w.buf[0], nil
}

// intactAt reports whether e's stored hash is what e would have at seq.
func intactAt(e *tes.Event, seq int64) bool {
	c := *e
	c.Seq = seq
	return bytes.Equal(tes.ChainHash(e.PrevHash, &c), e.Hash)
}

// writtenAt finds the seq e was written at, near where it is now, or 0.
func writtenAt(e *tes.Event) int64 {
	for d := int64(1); d <= 1024; d++ {
		for _, s := range []int64{e.Seq - d, e.Seq + d} {
			if s > 0 && intactAt(e, s) {
				return s
			}
		}
	}
	return 0
}

// check compares e with the entry before it (nil at the start) and, at
// the first inconsistency, works out what was done.
func (w *walker) check(prev, e *tes.Event) (*Problem, error) {
	want, prevHash := int64(1), []byte(nil)
	if prev != nil {
		want, prevHash = prev.Seq+1, prev.Hash
	}
	contentOK := intactAt(e, e.Seq)
	linkOK := bytes.Equal(e.PrevHash, prevHash)
	switch {
	case e.Seq < want:
		return &Problem{Seq: e.Seq, Kind: KindInserted, Detail: fmt.Sprintf("seq %d comes before the chain's first entry, seq 1", e.Seq)}, nil
	case e.Seq > want:
		if prev == nil {
			return &Problem{Seq: 1, Kind: KindDeleted, Detail: fmt.Sprintf("the log starts at seq %d: entries 1 to %d are missing", e.Seq, e.Seq-1)}, nil
		}
		missing := fmt.Sprintf("entry %d is missing", want)
		if e.Seq-1 > want {
			missing = fmt.Sprintf("entries %d to %d are missing", want, e.Seq-1)
		}
		return &Problem{Seq: want, Kind: KindDeleted, Detail: fmt.Sprintf("seq jumps from %d to %d: %s", prev.Seq, e.Seq, missing)}, nil
	case contentOK && linkOK:
		return nil, nil
	case contentOK:
		// e is intact but does not follow the entry before it: that entry
		// was changed and its own hash recomputed.
		return &Problem{Seq: prev.Seq, Kind: KindEdited, Detail: fmt.Sprintf(
			"seq %d was changed and its hash recomputed: seq %d still links to the hash it had when it was written", prev.Seq, e.Seq)}, nil
	}
	// e's fields do not match its hash at this seq. Was it written at
	// another seq (moved), or are its fields changed?
	if s := writtenAt(e); s != 0 {
		if s == e.Seq-1 && prev != nil && bytes.Equal(e.PrevHash, prev.PrevHash) {
			return &Problem{Seq: prev.Seq, Kind: KindInserted, Detail: fmt.Sprintf(
				"seq %d was not written by the chain: the entry now at seq %d was written as seq %d, directly after seq %d", prev.Seq, e.Seq, s, prev.Seq-1)}, nil
		}
		if s > e.Seq {
			found, err := w.hashExists(e.PrevHash)
			if err != nil {
				return nil, err
			}
			if !found {
				return &Problem{Seq: e.Seq, Kind: KindDeleted, Detail: fmt.Sprintf(
					"the entry written as seq %d is missing and the rest renumbered: seq %d holds the entry written as seq %d", e.Seq, e.Seq, s)}, nil
			}
		}
		return &Problem{Seq: e.Seq, Kind: KindReordered, Detail: fmt.Sprintf("seq %d holds the entry written as seq %d", e.Seq, s)}, nil
	}
	if next, err := w.peek(); err != nil {
		return nil, err
	} else if next != nil && intactAt(next, e.Seq) && bytes.Equal(next.PrevHash, prevHash) {
		return &Problem{Seq: e.Seq, Kind: KindInserted, Detail: fmt.Sprintf(
			"seq %d was not written by the chain: the next entry was written as seq %d, directly after seq %d", e.Seq, e.Seq, e.Seq-1)}, nil
	}
	return &Problem{Seq: e.Seq, Kind: KindEdited, Detail: fmt.Sprintf(
		"its fields (at %s, actor %q, action %q, subject %q) do not match its hash: they were changed after it was written",
		e.At.Format(time.RFC3339), e.Actor, e.Action, e.Subject)}, nil
}

// hashExists scans the log for an entry with hash h.
func (w *walker) hashExists(h []byte) (bool, error) {
	after := int64(math.MinInt64)
	for {
		page, err := w.st.EventsAfter(w.ctx, after, pageSize)
		if err != nil {
			return false, err
		}
		for _, e := range page {
			if bytes.Equal(e.Hash, h) {
				return true, nil
			}
		}
		if len(page) < pageSize {
			return false, nil
		}
		after = page[len(page)-1].Seq
	}
}
