package postgres

import (
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// Array parameters for the batched statements of the ingest path (unnest of
// one array per column), encoded without an allocation per element.
//
// Given a plain slice, pgx boxes every element into an interface as it
// encodes it: a []byte, string or time.Time each costs an allocation, and
// [][]byte, []*string and []*time.Time also go through reflection. For a
// batch of reports that was about a tenth of TES's CPU per report on
// PostgreSQL (CPU profile of `tes bench --window 16`) and 40% of the
// ingest's allocations. Here each element reaches pgx as a struct holding
// one pointer into the slice, which an interface holds without allocating,
// and which implements the pgtype valuer interface of its column type.
type pgArray[T any] struct {
	s   []T
	ref func(*T) any // returns a one-pointer struct; see the *Ref types
}

func (a pgArray[T]) Dimensions() []pgtype.ArrayDimension {
	if a.s == nil {
		return nil // a NULL array
	}
	return []pgtype.ArrayDimension{{Length: int32(len(a.s)), LowerBound: 1}}
}

func (a pgArray[T]) Index(i int) any { return a.ref(&a.s[i]) }

func (a pgArray[T]) IndexType() any { return a.ref(nil) }

// byteaArray is a bytea[]; a nil element is NULL.
func byteaArray(s [][]byte) pgArray[[]byte] {
	return pgArray[[]byte]{s, func(p *[]byte) any { return byteaRef{p} }}
}

// textArray is a text[].
func textArray(s []string) pgArray[string] {
	return pgArray[string]{s, func(p *string) any { return textRef{p} }}
}

// nullTextArray is a text[]; a nil element is NULL.
func nullTextArray(s []*string) pgArray[*string] {
	return pgArray[*string]{s, func(p **string) any {
		if p == nil {
			return nullTextRef{}
		}
		return nullTextRef{*p}
	}}
}

// timeArray is a timestamptz[].
func timeArray(s []time.Time) pgArray[time.Time] {
	return pgArray[time.Time]{s, func(p *time.Time) any { return timeRef{p} }}
}

// nullTimeArray is a timestamptz[]; a nil element is NULL.
func nullTimeArray(s []*time.Time) pgArray[*time.Time] {
	return pgArray[*time.Time]{s, func(p **time.Time) any {
		if p == nil {
			return nullTimeRef{}
		}
		return nullTimeRef{*p}
	}}
}

// int64Array is an int8[] (or any integer array the values fit).
func int64Array(s []int64) pgArray[int64] {
	return pgArray[int64]{s, func(p *int64) any { return int64Ref{p} }}
}

// int32Array is an int4[].
func int32Array(s []int32) pgArray[int32] {
	return pgArray[int32]{s, func(p *int32) any { return int32Ref{p} }}
}

type byteaRef struct{ p *[]byte }

func (r byteaRef) BytesValue() ([]byte, error) { return *r.p, nil }

type textRef struct{ p *string }

func (r textRef) TextValue() (pgtype.Text, error) { return pgtype.Text{String: *r.p, Valid: true}, nil }

type nullTextRef struct{ p *string }

func (r nullTextRef) TextValue() (pgtype.Text, error) {
	if r.p == nil {
		return pgtype.Text{}, nil
	}
	return pgtype.Text{String: *r.p, Valid: true}, nil
}

type timeRef struct{ p *time.Time }

func (r timeRef) TimestamptzValue() (pgtype.Timestamptz, error) {
	return pgtype.Timestamptz{Time: *r.p, Valid: true}, nil
}

type nullTimeRef struct{ p *time.Time }

func (r nullTimeRef) TimestamptzValue() (pgtype.Timestamptz, error) {
	if r.p == nil {
		return pgtype.Timestamptz{}, nil
	}
	return pgtype.Timestamptz{Time: *r.p, Valid: true}, nil
}

type int64Ref struct{ p *int64 }

func (r int64Ref) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: *r.p, Valid: true}, nil
}

type int32Ref struct{ p *int32 }

func (r int32Ref) Int64Value() (pgtype.Int8, error) {
	return pgtype.Int8{Int64: int64(*r.p), Valid: true}, nil
}
