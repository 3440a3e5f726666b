package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

func TestEntryRoundTrip(t *testing.T) {
	tests := []Entry{
		{Now: 0},
		{Now: -5, Commands: []Command{Acquire{Key: "k", Interval: 3, Max: 2, Slop: 0}}},
		{Now: 1 << 50, Commands: []Command{
			Reset{Keys: []string{"a", "", "ü"}},
			Reset{Keys: []string{}},
			SetNode{ID: "n1", RESPAddr: "127.0.0.1:6380"},
			RemoveNode{ID: "n1"},
			Acquire{Key: "x", Interval: 1 << 62, Max: -1, Slop: 9},
		}},
		{Now: 2, Commands: []Command{
			Acquire{Key: "c", Interval: 10, Max: 3, Slop: 1, Cost: 4},
			Acquire{Key: "t", Interval: 10, Max: 3, Slop: 1, Token: "req-1"},
			Acquire{Key: "p", Interval: 10, Max: 3, Slop: 1, Cost: -2, Token: "x"},
		}},
		{Now: 3, Commands: []Command{
			CellThrottle{Key: "user123", MaxBurst: 15, Count: 30, Period: 60, Quantity: 1},
			FlushAll{},
			CellThrottle{Key: "n", MaxBurst: -1, Count: 1 << 62, Period: -3, Quantity: 0},
		}},
	}
	for i, e := range tests {
		got, err := DecodeEntry(e.Encode())
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if len(e.Commands) == 0 {
			e.Commands = nil
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("%d: got %#v, want %#v", i, got, e)
		}
	}
}

func TestDecodeEntryErrors(t *testing.T) {
	good := Entry{Now: 7, Commands: []Command{Acquire{Key: "k", Interval: 1}}}.Encode()
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"unknown-type", []byte{99, 1, 0, 0}, ErrUnknownType},
		{"unknown-version", []byte{byte(EntryBatch), 9, 0, 0}, ErrUnknownType},
		{"unknown-op", []byte{byte(EntryBatch), 1, 0, 1, 77}, ErrUnknownType},
		{"truncated", good[:len(good)-1], ErrCorrupt},
		{"trailing", append(append([]byte{}, good...), 0), ErrCorrupt},
		{"huge-count", []byte{byte(EntryBatch), 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, ErrCorrupt},
		{"huge-string", []byte{byte(EntryBatch), 1, 0, 1, byte(OpAcquire), 0xff, 0xff, 0x7f}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeEntry(tt.data); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(Entry{Now: 1, Commands: []Command{Acquire{Key: "k", Interval: 3, Max: 2, Slop: 1}}}.Encode())
	f.Add(Entry{Now: 2, Commands: []Command{Reset{Keys: []string{"a", "b"}}, SetNode{ID: "n", RESPAddr: "a:1"}}}.Encode())
	f.Add([]byte{1, 1})
	f.Add(Entry{Now: 3, Commands: []Command{CellThrottle{Key: "c", MaxBurst: 1, Count: 2, Period: 3, Quantity: 4}, FlushAll{}}}.Encode())
	f.Add([]byte{1, 1, 2, 1, 7, 1, 0x63, 0xff})
	f.Add(Entry{Now: 3, Commands: []Command{Acquire{Key: "k", Interval: 3, Max: 2, Slop: 1, Cost: 3, Token: "t"}, Cancel{Key: "k", ValidAt: 6, Token: "t"}, Cancel{Key: "k", ValidAt: 3}}}.Encode())
	f.Add(Entry{Now: 4, Commands: []Command{Acquire{Key: "k", Interval: 3, Max: 2, Token: "t", TokenWindow: 18_000}, Cancel{Key: "k", ValidAt: 6, Token: "t", TokenWindow: -1}, Acquire{Key: "k", Interval: 3, TokenWindow: 1 << 62}}}.Encode())
	f.Add(Entry{Now: 5, Commands: []Command{
		Acquire{Key: "k", Interval: 3, Max: 2, Cost: 2, Session: 1 << 60, Seq: 1<<64 - 1, TokenWindow: 18_000},
		Acquire{Key: "k", Interval: 3, Max: 2, Session: 1 << 60, TokenWindow: 18_000},
		Cancel{Key: "k", ValidAt: 6, Session: 1 << 60, Seq: 1, TokenWindow: 18_000},
		Cancel{Key: "j", ValidAt: 6, Session: 7, Seq: 1, TokenWindow: -3},
		Acquire{Key: "k", Interval: 3, Max: 2, Session: 7, Seq: 1, TokenWindow: -3},
	}}.Encode())
	f.Add([]byte{1, 1, 2, 1, byte(OpAcquireNext), 1, 'k', 2, 2, 2, 2})
	f.Add([]byte{1, 1, 2, 1, byte(OpCancelSeq), 1, 'k', 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if cerr := CheckEntry(data); (cerr == nil) != (err == nil) || cerr != nil && cerr.Error() != err.Error() {
			t.Fatalf("CheckEntry says %v, DecodeEntry %v", cerr, err)
		}
		// DecodeEntryIn decodes the same entry, after what dst holds,
		// which it leaves as it was.
		prefix := []Command{FlushAll{}}
		in, dst, ierr := DecodeEntryIn(prefix[:1:1], string(data))
		if (ierr == nil) != (err == nil) || ierr != nil && ierr.Error() != err.Error() {
			t.Fatalf("DecodeEntryIn says %v, DecodeEntry %v", ierr, err)
		}
		if ierr == nil && (!reflect.DeepEqual(in, e) || len(dst) != 1+len(e.Commands) || !reflect.DeepEqual(dst[1:], e.Commands) && len(e.Commands) > 0) {
			t.Fatalf("DecodeEntryIn: %#v, %#v; DecodeEntry %#v", in, dst, e)
		}
		if dst[0] != (FlushAll{}) {
			t.Fatalf("DecodeEntryIn changed dst[0]: %#v", dst[0])
		}
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a form that decodes to the same
		// entry, and applying it never panics. An ACQUIRE of cost 1
		// without a token is written as OpAcquire, which says nothing of
		// cost (read as 0): both take one slot.
		for i, c := range e.Commands {
			if a, ok := c.(Acquire); ok && a.Cost == 1 && a.Op() == OpAcquire {
				a.Cost = 0
				e.Commands[i] = a
			}
		}
		again, err := DecodeEntry(e.Encode())
		if err != nil || !reflect.DeepEqual(e, again) {
			t.Fatalf("re-decode: %v %#v %#v", err, e, again)
		}
		f := New(Config{})
		f.mu.Lock()
		want := f.applyEntry(1, e)
		f.mu.Unlock()
		// Apply, which decodes Acquires into space it reuses, answers
		// as the commands decoded as values do, twice over (the second
		// time in the space the first left).
		g := New(Config{})
		for i := range 2 {
			got := g.Apply(&raft.Log{Index: uint64(i + 1), Data: data})
			if i == 0 && fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Apply: %v, want %v", got, want)
			}
		}
	})
}

// Entries decoded one after another into one array each keep their own
// commands: an entry's Commands end at its length, so what is appended
// after it never shows through, and an entry that fails to decode leaves
// the array as it was.
func TestDecodeEntryInShared(t *testing.T) {
	entries := []Entry{
		{Now: 1, Commands: []Command{Acquire{Key: "first", Interval: 3, Max: 2}}},
		{Now: 2, Commands: []Command{Reset{Keys: []string{"a", "b"}}, Cancel{Key: "c", ValidAt: 9, Token: "t"}}},
		{Now: 3, Commands: []Command{Acquire{Key: "last", Interval: 1, Max: 1, Token: "tok"}}},
	}
	var dst []Command
	var got []Entry
	for _, want := range entries {
		var e Entry
		var err error
		if e, dst, err = DecodeEntryIn(dst, string(want.Encode())); err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
		if _, again, err := DecodeEntryIn(dst, "\x01\x01\x02\x05"); err == nil || len(again) != len(dst) {
			t.Fatalf("a truncated entry: %v, dst %d -> %d", err, len(dst), len(again))
		}
	}
	for i := range entries {
		if !reflect.DeepEqual(got[i], entries[i]) || cap(got[i].Commands) != len(got[i].Commands) {
			t.Errorf("entry %d: %#v (cap %d), want %#v", i, got[i], cap(got[i].Commands), entries[i])
		}
	}
	if len(dst) != 4 {
		t.Errorf("dst holds %d commands, want 4", len(dst))
	}
}
