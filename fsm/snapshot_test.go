package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// encodeImage writes img in the snapshot format, bypassing every check, as
// a hostile or damaged backup would be.
func encodeImage(t *testing.T, img image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := img.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goodImage is a valid image at clock 1_000_000.
func goodImage() image {
	return image{
		now:   1_000_000,
		stats: Stats{Grants: 3, Reservations: 1, Denials: 2},
		keys: []keyState{
			{key: "a", last: 1_000_100, interval: 100},
			{key: "b", last: 999_000, interval: 5000},
		},
		nodes: []Node{{ID: "n1", RESPAddr: "10.0.0.1:6380"}, {ID: "n2", RESPAddr: "[::1]:6381"}},
	}
}

// TestRestoreRefusesInvalidImages restores images that decode but hold
// state no valid command could have produced: each is refused with
// ErrInvalidImage naming what is wrong, and the state machine is left
// exactly as it was.
func TestRestoreRefusesInvalidImages(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*image)
		want   string // in the error text
	}{
		// The reproducer: with the clock near 2^63 every later
		// ACQUIRE overflowed, for good.
		{"clock near 2^63", func(i *image) { i.now = math.MaxInt64 - 10 }, "clock 9223372036854775797 is outside"},
		{"clock just past MaxClock", func(i *image) { i.now = MaxClock + 1 }, "is outside 0.."},
		{"negative clock", func(i *image) { i.now = -1 }, "clock -1 is outside"},
		{"negative interval", func(i *image) { i.keys[1].interval = -5 }, `key "b": interval -5 is less than 1`},
		{"zero interval", func(i *image) { i.keys[0].interval = 0 }, `key "a": interval 0 is less than 1`},
		{"duplicate key", func(i *image) { i.keys = append(i.keys, keyState{key: "a", last: 5, interval: 1}) }, `key "a" appears twice`},
		{"empty key", func(i *image) { i.keys[0].key = "" }, `key "": length 0`},
		{"negative last", func(i *image) { i.keys[0].last = -1 }, `key "a": last slot -1 is negative`},
		{"last overflows", func(i *image) { i.keys[0].last = math.MaxInt64 - 50 }, `key "a": last slot 9223372036854775757 plus interval 100 overflows`},
		{"negative grants", func(i *image) { i.stats.Grants = -1 }, "grants counter -1 is negative"},
		{"negative denials", func(i *image) { i.stats.Denials = math.MinInt64 }, "denials counter"},
		{"duplicate member", func(i *image) { i.nodes = append(i.nodes, Node{ID: "n1", RESPAddr: "x:1"}) }, `member "n1" appears twice`},
		{"empty member ID", func(i *image) { i.nodes[0].ID = "" }, "empty ID"},
		{"key with a line break is quoted", func(i *image) { i.keys[0].key = "x\r\ny"; i.keys[0].interval = -1 }, `key "x\r\ny"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := goodImage()
			tt.mutate(&img)
			data := encodeImage(t, img)

			f := New(Config{})
			apply(t, f, 500, acq("before", 1<<20, 1))
			before, clock := f.Keys(0), f.Clock(0)
			err := f.Restore(io.NopCloser(bytes.NewReader(data)))
			if !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrInvalidImage containing %q", err, tt.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error text spans lines: %q", err)
			}
			if !reflect.DeepEqual(f.Keys(0), before) || f.Clock(0) != clock {
				t.Fatalf("a refused image changed the state")
			}
			if err := ValidateBackup(bytes.NewReader(data), 1_000_000); !errors.Is(err, ErrInvalidImage) {
				t.Fatalf("ValidateBackup: %v, want ErrInvalidImage", err)
			}
		})
	}

	t.Run("a valid image restores and serves", func(t *testing.T) {
		f := New(Config{})
		if err := f.Restore(io.NopCloser(bytes.NewReader(encodeImage(t, goodImage())))); err != nil {
			t.Fatal(err)
		}
		if r := apply(t, f, 1_000_050, acq("a", 100, 5))[0]; r.Err != nil || r.Permit.ValidAt != 1_000_200 {
			t.Fatalf("acquire after restore: %+v", r)
		}
	})
}

// TestValidateBackup checks the checks RAFT.RESTORE adds to Restore's: the
// image's clock against the cluster's, and member addresses.
func TestValidateBackup(t *testing.T) {
	const clock = 1_000_000
	tests := []struct {
		name   string
		mutate func(*image)
		want   error
	}{
		{"valid", func(*image) {}, nil},
		{"clock behind the cluster's", func(i *image) { i.now = 5; i.keys = nil }, nil},
		{"clock a day ahead", func(i *image) { i.now = clock + MaxBackupLead }, nil},
		{"clock more than a day ahead", func(i *image) { i.now = clock + MaxBackupLead + 1 }, ErrInvalidImage},
		{"member address without a port", func(i *image) { i.nodes[0].RESPAddr = "10.0.0.1" }, ErrInvalidImage},
		{"member address with a bad port", func(i *image) { i.nodes[1].RESPAddr = "h:99999" }, ErrInvalidImage},
		{"member ID too long", func(i *image) { i.nodes[0].ID = strings.Repeat("n", MaxNodeFieldLen+1) }, ErrInvalidImage},
		{"garbage", nil, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte("TDBSNAP\x01garbage")
			if tt.mutate != nil {
				img := goodImage()
				tt.mutate(&img)
				data = encodeImage(t, img)
			}
			err := ValidateBackup(bytes.NewReader(data), clock)
			if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestImageCountsAreNotTrusted gives images that claim 2^62 keys or
// members but end after a few bytes: decoding fails without allocating
// for the claimed count (elements are allocated as they arrive).
func TestImageCountsAreNotTrusted(t *testing.T) {
	head := func() []byte {
		b := append([]byte(snapshotMagic), snapshotVersion)
		for _, v := range []int64{1000, 0, 0, 0} {
			b = binary.AppendVarint(b, v)
		}
		return b
	}
	keys := binary.AppendUvarint(head(), 1<<62)
	keys = appendString(keys, "k")
	keys = binary.AppendVarint(keys, 1000)
	keys = binary.AppendVarint(keys, 10)
	nodes := binary.AppendUvarint(head(), 0)
	nodes = binary.AppendUvarint(nodes, 1<<62)
	longKey := binary.AppendUvarint(head(), 1)
	longKey = binary.AppendUvarint(longKey, 1<<62) // a key's claimed length
	for name, data := range map[string][]byte{"keys": keys, "nodes": nodes, "key length": longKey} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(data)))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
			// The reader's 64 KiB buffer and a few small objects; nothing
			// proportional to the claimed count.
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Fatalf("decoding allocated %d bytes", n)
			}
		})
	}
}

// FuzzRestore feeds arbitrary bytes to Restore: it never panics, and an
// image it accepts backs up to an image it accepts again, unchanged.
func FuzzRestore(f *testing.F) {
	var good bytes.Buffer
	img := goodImage()
	if err := img.writeTo(&good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add([]byte("TDBSNAP\x01"))
	f.Add(append([]byte("TDBSNAP\x01\x02\x00\x00\x00"), binary.AppendUvarint(nil, 1<<62)...))
	withCells := goodImage()
	withCells.cells = []cellKey{{"c", 1_000_500_000_000}, {"d", 0}}
	var wc bytes.Buffer
	if err := withCells.writeTo(&wc); err != nil {
		f.Fatal(err)
	}
	f.Add(wc.Bytes())
	bad := goodImage()
	bad.now = math.MaxInt64
	var b bytes.Buffer
	_ = bad.writeTo(&b)
	f.Add(b.Bytes())
	withTokens := goodImage()
	withTokens.keys[0].span = 1
	withTokens.keys[1].span = -1
	withTokens.tokens = []tokenRecord{{kind: tokenAcquire, key: "a", token: "t", at: 999_999, permit: Permit{Granted: true, ValidAt: 5}}, {kind: tokenCancel, key: "b", token: "u", at: 1_000_000}}
	b.Reset()
	_ = withTokens.writeTo(&b)
	f.Add(b.Bytes())
	withTokens.tokens = append(withTokens.tokens, tokenRecord{kind: tokenAcquire, key: "a", token: "w", at: 999_000, window: 2000, permit: Permit{Granted: true}},
		tokenRecord{kind: tokenCancel, key: "a", token: "w", at: 999_000, window: 2000})
	b.Reset()
	_ = withTokens.writeTo(&b)
	f.Add(b.Bytes())
	withTokens.seqs = []seqRecord{{session: 1 << 63, seq: 1<<64 - 1, kind: tokenAcquire, key: "a", at: 999_000, window: 18_000, permit: Permit{Granted: true, ValidAt: 999_000}},
		{session: 1, seq: 0, kind: tokenCancel, key: "b", at: 999_001, window: TokenWindow}}
	b.Reset()
	_ = withTokens.writeTo(&b)
	f.Add(b.Bytes())
	withTokens.seqs[1].session = 1 << 63 // a duplicate number
	withTokens.seqs[1].seq = 1<<64 - 1
	b.Reset()
	_ = withTokens.writeTo(&b)
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		m := New(Config{})
		if err := m.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrInvalidImage) {
				t.Fatalf("error outside the documented sentinels: %v", err)
			}
			return
		}
		var out bytes.Buffer
		if err := m.Backup(&out); err != nil {
			t.Fatal(err)
		}
		m2 := New(Config{})
		if err := m2.Restore(io.NopCloser(bytes.NewReader(out.Bytes()))); err != nil {
			t.Fatalf("an accepted image backs up to one Restore refuses: %v", err)
		}
		if !reflect.DeepEqual(m.Keys(0), m2.Keys(0)) || m.Clock(0) != m2.Clock(0) {
			t.Fatal("state changed through a backup")
		}
	})
}

// TestImageVersions checks that images of version 1 (no sections) are
// still read, and that a section this build does not know is refused as
// from a newer version rather than skipped.
func TestImageVersions(t *testing.T) {
	v2 := encodeImage(t, goodImage())
	if v2[len(snapshotMagic)] != 2 || v2[len(v2)-1] != byte(sectionEnd) {
		t.Fatalf("image does not end with the section end: % x", v2[len(v2)-4:])
	}
	v1 := append([]byte(nil), v2[:len(v2)-1]...)
	v1[len(snapshotMagic)] = 1
	unknown := append(append([]byte(nil), v2[:len(v2)-1]...), 0x7f)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"version 2", v2, nil},
		{"version 1", v1, nil},
		{"unknown section", unknown, ErrUnknownType},
		{"version 1 with a trailer", append(append([]byte(nil), v1...), 0), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			err := f.Restore(io.NopCloser(bytes.NewReader(tt.data)))
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Fatalf("Restore: %v, want %v", err, tt.want)
			}
			if tt.want == nil && f.DBSize(0) != len(goodImage().keys) {
				t.Fatalf("restored %d keys, want %d", f.DBSize(0), len(goodImage().keys))
			}
		})
	}
}
