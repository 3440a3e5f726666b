package fsm

import (
	"bytes"
	"flag"
	"os"
	"strconv"
	"testing"
)

// writeGolden rewrites testdata/tokens.img from this build: only for a
// deliberate change of the image format, which also needs a new
// snapshotVersion or section.
var writeGolden = flag.Bool("write-golden", false, "write testdata/tokens.img from this build instead of checking it")

// TestSnapshotTokensGolden checks that the image of a state holding
// tokens of both kinds (kept for TokenWindow and for a window of their
// own, some pruned, across several chunks) is byte for byte the one the
// build before the tokens were taken by chunks wrote
// (testdata/tokens.img): the format did not change.
func TestSnapshotTokensGolden(t *testing.T) {
	f := New(Config{})
	var index uint64
	n := 0
	for now := int64(1_000_000); now < 1_000_000+2*TokenWindow; now += 250 {
		e := Entry{Now: now}
		for j := range 5 {
			n++
			var window int64
			switch j % 3 {
			case 1:
				window = 1 + int64(n*7919)%(TokenWindow-1)
			case 2:
				window = TokenWindow
			}
			key := "key:" + strconv.Itoa(n%37)
			e.Commands = append(e.Commands, Acquire{Key: key, Interval: 1 + int64(n%5), Max: 1 << 40, Cost: 1 + int64(n%3), Token: "id-" + strconv.Itoa(n), TokenWindow: window})
			if n%11 == 0 {
				e.Commands = append(e.Commands, Cancel{Key: key, ValidAt: now, Token: "c-" + strconv.Itoa(n), TokenWindow: window})
			}
		}
		index++
		f.Apply(&raftLog{Index: index, Data: e.Encode()})
	}
	if f.Tokens() < 1000 {
		t.Fatalf("%d tokens, want more than a thousand", f.Tokens())
	}
	var got bytes.Buffer
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &failSink{failAfter: -1}
	if err := s.Persist(sink); err != nil {
		t.Fatal(err)
	}
	s.Release()
	got.Write(sink.Bytes())
	if *writeGolden {
		if err := os.WriteFile("testdata/tokens.img", got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("testdata/tokens.img")
	if err != nil {
		t.Fatal(err)
	}
	img, err := readImage(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	var timed int
	for _, r := range img.tokens {
		if r.window != 0 {
			timed++
		}
	}
	if timed == 0 || timed == len(img.tokens) {
		t.Fatalf("testdata/tokens.img holds %d tokens, %d of them kept for a window of their own: want both kinds", len(img.tokens), timed)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("image of %d bytes differs from testdata/tokens.img (%d bytes)\n%s", got.Len(), len(want), describeDiff(got.Bytes(), want))
	}
}
