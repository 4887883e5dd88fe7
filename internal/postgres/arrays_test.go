package postgres

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tes-traffic/tes/internal/postgres/pgtest"
)

// TestArrays sends every array helper's values, NULL elements included,
// through a real server and reads them back as pgx reads plain slices.
func TestArrays(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	s1, s2 := "α", ""
	t1 := time.Date(2026, 11, 27, 9, 30, 1, 123456000, time.UTC)
	t2 := time.Date(1999, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name, sql string
		arg       any
		got, want any
	}{
		{"bytea", "SELECT $1::bytea[]", byteaArray([][]byte{{1, 2}, nil, {}, make([]byte, 300)}),
			new([][]byte), &[][]byte{{1, 2}, nil, {}, make([]byte, 300)}},
		{"text", "SELECT $1::text[]", textArray([]string{"a", "", "ü'\"\\"}),
			new([]string), &[]string{"a", "", "ü'\"\\"}},
		{"null text", "SELECT $1::text[]", nullTextArray([]*string{&s1, nil, &s2}),
			new([]*string), &[]*string{&s1, nil, &s2}},
		{"time", "SELECT $1::timestamptz[]", timeArray([]time.Time{t1, t2}),
			new([]time.Time), &[]time.Time{t1, t2}},
		{"null time", "SELECT $1::timestamptz[]", nullTimeArray([]*time.Time{nil, &t1}),
			new([]*time.Time), &[]*time.Time{nil, &t1}},
		{"int8", "SELECT $1::int8[]", int64Array([]int64{0, -1, 1 << 62}),
			new([]int64), &[]int64{0, -1, 1 << 62}},
		{"int4", "SELECT $1::int4[]", int32Array([]int32{7, -7, 1<<31 - 1}),
			new([]int32), &[]int32{7, -7, 1<<31 - 1}},
		{"empty", "SELECT $1::text[]", textArray([]string{}), new([]string), &[]string{}},
		{"null array", "SELECT $1::bytea[] IS NULL", byteaArray(nil), new(bool), ptr(true)},
		{"unnest", "SELECT array_agg(x ORDER BY n) FROM unnest($1::bytea[]) WITH ORDINALITY AS u(x, n) WHERE x IS NOT NULL",
			byteaArray([][]byte{nil, {9}, nil, {8}}), new([][]byte), &[][]byte{{9}, {8}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := conn.QueryRow(ctx, c.sql, c.arg).Scan(c.got); err != nil {
				t.Fatal(err)
			}
			got, want := reflect.ValueOf(c.got).Elem().Interface(), reflect.ValueOf(c.want).Elem().Interface()
			if tg, ok := got.([]time.Time); ok {
				for i := range tg {
					tg[i] = tg[i].UTC()
				}
			}
			if tg, ok := got.([]*time.Time); ok {
				for _, p := range tg {
					if p != nil {
						*p = p.UTC()
					}
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// TestArraysEncodeWithoutPerElementAllocations: encoding an array of a
// thousand elements allocates no more than encoding one, for every helper
// (the reason they exist); a plain [][]byte allocates per element.
func TestArraysEncodeWithoutPerElementAllocations(t *testing.T) {
	m := pgtype.NewMap()
	oid := func(name string) uint32 {
		typ, ok := m.TypeForName(name)
		if !ok {
			t.Fatalf("no type %s", name)
		}
		return typ.OID
	}
	s := "plate"
	at := time.Now()
	for _, c := range []struct {
		name string
		oid  uint32
		make func(n int) any
	}{
		{"bytea", oid("_bytea"), func(n int) any { return byteaArray(make([][]byte, n)) }},
		{"text", oid("_text"), func(n int) any { return textArray(make([]string, n)) }},
		{"null text", oid("_text"), func(n int) any {
			v := make([]*string, n)
			for i := range v {
				v[i] = &s
			}
			return nullTextArray(v)
		}},
		{"time", oid("_timestamptz"), func(n int) any {
			v := make([]time.Time, n)
			for i := range v {
				v[i] = at
			}
			return timeArray(v)
		}},
		{"null time", oid("_timestamptz"), func(n int) any {
			v := make([]*time.Time, n)
			for i := range v {
				v[i] = &at
			}
			return nullTimeArray(v)
		}},
		{"int8", oid("_int8"), func(n int) any {
			v := make([]int64, n)
			for i := range v {
				v[i] = 1000 + int64(i)
			}
			return int64Array(v)
		}},
		{"int4", oid("_int4"), func(n int) any {
			v := make([]int32, n)
			for i := range v {
				v[i] = 1000 + int32(i)
			}
			return int32Array(v)
		}},
	} {
		allocs := func(n int) float64 {
			v := c.make(n)
			buf := make([]byte, 0, 1<<20)
			return testing.AllocsPerRun(20, func() {
				if _, err := m.Encode(c.oid, pgtype.BinaryFormatCode, v, buf[:0]); err != nil {
					t.Fatal(err)
				}
			})
		}
		if one, many := allocs(1), allocs(1000); many > one {
			t.Errorf("%s: %v allocations for 1,000 elements, %v for one", c.name, many, one)
		}
	}
	plain := func(n int) float64 {
		v := make([][]byte, n)
		buf := make([]byte, 0, 1<<20)
		return testing.AllocsPerRun(20, func() { m.Encode(oid("_bytea"), pgtype.BinaryFormatCode, v, buf[:0]) })
	}
	if plain(1000) < 1000 {
		t.Logf("pgx now encodes a plain [][]byte without an allocation per element: the helpers may be unneeded")
	}
}

func ptr[T any](v T) *T { return &v }
