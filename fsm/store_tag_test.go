package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"testing"
)

// TestSlotTag checks a slot's packing: the id comes back whole up to the
// cap, the tag is the hash bits just below the segment's (not the
// segment's, not the slot index's), and no slot of a record is 0 (empty).
func TestSlotTag(t *testing.T) {
	if maxIDKeys != 134_217_727 || maxKeys != maxIDKeys {
		t.Fatalf("key cap %d (%d), README says 134,217,727", maxIDKeys, maxKeys)
	}
	for _, c := range []struct {
		name string
		id   uint32
		h    uint64
		tag  uint32 // want: h's bits tagShift..tagShift+tagBits-1
	}{
		{"lowest id, zero hash", 1, 0, 0},
		{"id at the cap, all-ones hash", idMask, ^uint64(0), 31},
		{"id at the cap, zero hash", idMask, 0, 0},
		{"segment bits only", 7, 0xff << 56, 0},
		{"slot index bits only", 7, 1<<tagShift - 1, 0},
		{"lowest tag bit", 2, 1 << tagShift, 1},
		{"highest tag bit", 2, 1 << (tagShift + tagBits - 1), 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := slotOf(c.id, c.h)
			if v == 0 || v&idMask != c.id || v>>idBits != c.tag || v&^idMask != slotTag(c.h) {
				t.Fatalf("slotOf(%d, %#x) = %#x: id %d tag %d, want id %d tag %d", c.id, c.h, v, v&idMask, v>>idBits, c.id, c.tag)
			}
		})
	}
	t.Run("id past the cap", func(t *testing.T) {
		s := newStore()
		s.next = idMask + 1
		defer func() {
			if recover() == nil {
				t.Fatal("add handed out an id that a slot cannot hold")
			}
		}()
		s.add("k", keyHash("k"), 1, 1, 0, false)
	})
}

// tagKeys finds, under this process's table seed, n keys that fall in
// one segment at one home slot of a minimal segment, all with the same tag
// when sameTag, else each with a tag of its own.
func tagKeys(t *testing.T, n int, sameTag bool) []string {
	t.Helper()
	type home struct {
		seg, slot uint64
		tag       uint32
	}
	groups := map[home][]string{}
	tags := map[[2]uint64]map[uint32]string{}
	for i := range 1 << 22 {
		k := fmt.Sprintf("tag:%d", i)
		h := maphash.String(tableSeed, k)
		seg, slot := h>>(64-segBits), h&(minSegSlots-1)
		if sameTag {
			g := home{seg, slot, slotTag(h)}
			if groups[g] = append(groups[g], k); len(groups[g]) == n {
				return groups[g]
			}
			continue
		}
		at := [2]uint64{seg, slot}
		if tags[at] == nil {
			tags[at] = map[uint32]string{}
		}
		tags[at][slotTag(h)] = k
		if len(tags[at]) == n {
			var out []string
			for _, k := range tags[at] {
				out = append(out, k)
			}
			return out
		}
	}
	t.Fatalf("no %d keys sharing a home slot found", n)
	return nil
}

// TestStoreTagCollisions inserts, looks up, deletes and reinserts keys that
// share a segment and a home slot, with equal tags (the record must be read
// to tell them apart) and with distinct ones (it need not be), and
// checks each step against checkStore's invariants, tags included.
func TestStoreTagCollisions(t *testing.T) {
	for _, c := range []struct {
		name    string
		sameTag bool
	}{{"same tag", true}, {"distinct tags", false}} {
		t.Run(c.name, func(t *testing.T) {
			keys := tagKeys(t, 4, c.sameTag)
			held, absent := keys[:3], keys[3]
			s := newStore()
			want := map[string]keyState{}
			put := func(k string, last int64) {
				want[k] = keyState{key: k, last: last, interval: 10, hash: keyHash(k)}
				s.insert(k, keyHash(k), last, 10, 0, false)
			}
			for i, k := range held {
				put(k, int64(i+1))
			}
			checkStore(t, s, want)
			if id, r := s.get(absent); id != 0 || r != nil {
				t.Fatalf("absent key %q found as id %d", absent, id)
			}
			// Delete the first of the run: the others move back and stay
			// reachable; then it comes back (its id reused).
			id, _ := s.get(held[0])
			s.remove(id)
			delete(want, held[0])
			checkStore(t, s, want)
			if id, _ := s.get(held[0]); id != 0 {
				t.Fatalf("deleted key %q still found", held[0])
			}
			put(held[0], 9)
			checkStore(t, s, want)
			// Delete from the middle, and insert the absent one.
			id, _ = s.get(held[1])
			s.remove(id)
			delete(want, held[1])
			put(absent, 11)
			checkStore(t, s, want)
		})
	}
}

// TestStoreTagGrow fills one segment through several doublings with keys
// from one home slot region, deletes half and reinserts them, checking
// that every slot keeps its key's tag as grow re-places it.
func TestStoreTagGrow(t *testing.T) {
	var keys []string
	for i := 0; len(keys) < 400; i++ {
		k := fmt.Sprintf("grow:%d", i)
		if maphash.String(tableSeed, k)>>(64-segBits) == 0 {
			keys = append(keys, k)
		}
	}
	s := newStore()
	want := map[string]keyState{}
	for i, k := range keys {
		want[k] = keyState{key: k, last: int64(i), interval: 10, hash: keyHash(k)}
		s.insert(k, keyHash(k), int64(i), 10, 0, false)
		if len(s.segs[0].slots) > minSegSlots && s.segs[0].n*4 == len(s.segs[0].slots)*3 {
			checkStore(t, s, want) // full, just before the next doubling
		}
	}
	if got := len(s.segs[0].slots); got < 512 {
		t.Fatalf("segment 0 has %d slots after %d keys", got, len(keys))
	}
	checkStore(t, s, want)
	for i := 0; i < len(keys); i += 2 {
		id, _ := s.get(keys[i])
		s.remove(id)
		delete(want, keys[i])
	}
	checkStore(t, s, want)
	for i := 0; i < len(keys); i += 2 {
		want[keys[i]] = keyState{key: keys[i], last: 7, interval: 10, hash: keyHash(keys[i])}
		s.insert(keys[i], keyHash(keys[i]), 7, 10, 0, false)
	}
	checkStore(t, s, want)
}

// withMaxKeys lowers the key cap for one test.
func withMaxKeys(t *testing.T, n int) {
	old := maxKeys
	maxKeys = n
	t.Cleanup(func() { maxKeys = old })
}

// TestKeyLimit lowers the cap to 3 keys and checks that Apply refuses a
// new key past it, with ErrKeyLimit, for both kinds of key, while keys
// held keep working; that Peek and PeekCell answer as Apply would; that
// the error travels in encoded results; that room made by RESET or expiry
// is usable; and that Restore refuses an image of more keys than the cap.
func TestKeyLimit(t *testing.T) {
	withMaxKeys(t, 3)
	f := New(Config{})
	res := apply(t, f, 1000,
		acq("a", 1000, 5), acq("b", 1000, 5), acq("c", 1000, 5),
		acq("d", 1000, 5), cl("e", 1, 10, 60, 1), acq("a", 1000, 5), cl("e", 1, 10, 60, 0))
	for i, want := range []error{nil, nil, nil, ErrKeyLimit, ErrKeyLimit, nil, nil} {
		if got := res[i].Err; !errors.Is(got, want) || (want == nil) != (got == nil) {
			t.Fatalf("result %d: %v, want %v", i, got, want)
		}
	}
	if !res[5].Permit.Granted || f.DBSize(0) != 3 {
		t.Fatalf("held key: %+v; %d keys", res[5].Permit, f.DBSize(0))
	}
	if s := f.Stats(); s.Grants+s.Reservations != 4 || s.Denials != 0 {
		t.Fatalf("refusals counted as grants or denials: %+v", s)
	}
	if _, err := f.Peek(acq("d", 1000, 5), 0); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("Peek of a new key: %v", err)
	}
	if _, err := f.Peek(acq("b", 1000, 5), 0); err != nil {
		t.Fatalf("Peek of a held key: %v", err)
	}
	if _, err := f.PeekCell(cl("e", 1, 10, 60, 1), 0); !errors.Is(err, ErrKeyLimit) {
		t.Fatalf("PeekCell of a new key: %v", err)
	}
	enc, err := AppendResults(nil, res)
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := DecodeResults(enc); err != nil || !errors.Is(dec[3].Err, ErrKeyLimit) {
		t.Fatalf("decoded: %v, %v", dec, err)
	}

	sink := persisted(t, f)

	// RESET makes room; expiry (a's reservation ends at 3000) too.
	if res := apply(t, f, 1001, Reset{Keys: []string{"b"}}, acq("d", 1000, 5), acq("x", 1000, 5)); res[1].Err != nil || !errors.Is(res[2].Err, ErrKeyLimit) {
		t.Fatalf("after RESET: %+v", res)
	}
	if _, err := f.Peek(acq("y", 1000, 5), 3000); err != nil {
		t.Fatalf("Peek of a new key once the others expire: %v", err)
	}
	if res := apply(t, f, 3000, acq("x", 1000, 5), acq("y", 1000, 5), acq("z", 1000, 5), acq("w", 1000, 5)); res[2].Err != nil || !errors.Is(res[3].Err, ErrKeyLimit) {
		t.Fatalf("after expiry: %+v", res)
	}

	g := New(Config{})
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil || g.DBSize(0) != 3 {
		t.Fatalf("restore of 3 keys at a cap of 3: %v, %d keys", err, g.DBSize(0))
	}
	maxKeys = 2
	if err := New(Config{}).Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); !errors.Is(err, ErrInvalidImage) {
		t.Fatalf("restore of 3 keys at a cap of 2: %v", err)
	}
}
