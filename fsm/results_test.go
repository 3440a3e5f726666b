package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

func TestResultsRoundTrip(t *testing.T) {
	rs := []Result{
		{Permit: Permit{Granted: true, WaitMs: 0, ValidAt: 1700000000000, ExpiresAt: 1700000000100, Pending: 0}},
		{Permit: Permit{Granted: true, WaitMs: 2000, ValidAt: 1700000002000, ExpiresAt: 1700000002100, Pending: 2}},
		{Permit: Permit{WaitMs: 950, ValidAt: -1, ExpiresAt: -1, Pending: 3}},
		{Count: 7},
		{Err: ErrInvalidInterval},
		{Err: fmt.Errorf("acquire %q: %w", "k", ErrOverflow)},
	}
	enc, err := AppendResults(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResults(enc)
	if err != nil {
		t.Fatal(err)
	}
	rs[5].Err = ErrOverflow // the sentinel travels, not its wrapping text
	if !reflect.DeepEqual(got, rs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rs)
	}
	if _, err := AppendResults(nil, []Result{{Err: errors.New("other")}}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("foreign error encoded: %v", err)
	}
	if _, err := DecodeResults(nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty input: %v", err)
	}
	for _, bad := range [][]byte{{3, 0}, {1, 1, 99, 0, 0, 0, 0, 0, 0}} {
		if _, err := DecodeResults(bad); !errors.Is(err, ErrUnknownType) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
	if _, err := DecodeResults(enc[:len(enc)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	if enc[0] != resultsVersion {
		t.Fatalf("a list without CL.THROTTLE results is written as version %d", enc[0])
	}
}

func TestResultsRoundTripCell(t *testing.T) {
	rs := []Result{
		{Cell: CellResult{Limit: 16, Remaining: 15, RetryAfter: -1e9, ResetAfter: 2e9}},
		{Cell: CellResult{Limited: true, Limit: 5, RetryAfter: 1e9, ResetAfter: 5e9}},
		{Permit: Permit{Granted: true, ValidAt: 5, ExpiresAt: 6}},
		{Err: ErrWrongType},
		{Err: fmt.Errorf("%w: %w", ErrInvalidCell, errors.New("period must not be negative"))},
	}
	enc, err := AppendResults(nil, rs)
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != resultsVersionCell {
		t.Fatalf("version %d", enc[0])
	}
	got, err := DecodeResults(enc)
	if err != nil {
		t.Fatal(err)
	}
	rs[4].Err = ErrInvalidCell
	if !reflect.DeepEqual(got, rs) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, rs)
	}
	bad := append([]byte(nil), enc...)
	bad[2+1+1+5] = 2 // the first result's limited flag
	if _, err := DecodeResults(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("limited flag 2: %v", err)
	}
}

func FuzzDecodeResults(f *testing.F) {
	enc, _ := AppendResults(nil, []Result{{Permit: Permit{Granted: true, ValidAt: 5, ExpiresAt: 6}}, {Err: ErrInvalidKey}})
	f.Add(enc)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{1, 1, 0, 2})
	cell, _ := AppendResults(nil, []Result{{Cell: CellResult{Limited: true, Limit: 1, RetryAfter: 7, ResetAfter: 9}}})
	f.Add(cell)
	f.Add([]byte{2, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := DecodeResults(data)
		// DecodeResultsTo decodes the same, after what dst holds.
		prefix := []Result{{Count: 7}}
		to, terr := DecodeResultsTo(prefix[:1:1], data)
		if (terr == nil) != (err == nil) || terr != nil && terr.Error() != err.Error() {
			t.Fatalf("DecodeResultsTo says %v, DecodeResults %v", terr, err)
		}
		if to[0].Count != 7 || len(to) != 1+len(rs) || len(rs) > 0 && !reflect.DeepEqual(to[1:], rs) {
			t.Fatalf("DecodeResultsTo: %+v; DecodeResults %+v", to, rs)
		}
		if err != nil {
			return
		}
		again, err := AppendResults(nil, rs)
		if err != nil {
			t.Fatalf("decoded results do not encode: %v", err)
		}
		rs2, err := DecodeResults(again)
		if err != nil || !reflect.DeepEqual(rs, rs2) {
			t.Fatalf("round trip changed %+v to %+v (%v)", rs, rs2, err)
		}
	})
}
