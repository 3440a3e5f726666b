package fsm

import (
	"math/rand"
	"sort"
	"strconv"
	"testing"
)

// TestScanGuarantee checks SCAN's promise while keys come and go between
// calls: every key present for the whole scan is returned exactly once, no
// key is returned that was never present, and each call visits at most
// count keys (plus keys sharing the last one's hash, which SHA-256 makes
// absent here).
func TestScanGuarantee(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	f := New(Config{})
	const stable = 2000
	var cmds []Command
	for i := range stable {
		if i%2 == 0 {
			cmds = append(cmds, acq("s"+strconv.Itoa(i), 1e9, 1))
		} else {
			cmds = append(cmds, cl("s"+strconv.Itoa(i), 1, 1, 1e6, 1))
		}
	}
	apply(t, f, start, cmds...)
	for _, count := range []int{1, 10, 97, 5000} {
		t.Run(strconv.Itoa(count), func(t *testing.T) {
			seen := map[string]int{}
			ever := map[string]bool{}
			for _, k := range f.AllKeys(0, nil) {
				ever[k] = true
			}
			cursor, calls := uint64(0), 0
			for {
				next, keys := f.Scan(cursor, count, 0, nil)
				calls++
				if len(keys) > count {
					t.Fatalf("call %d returned %d keys for count %d", calls, len(keys), count)
				}
				for _, k := range keys {
					seen[k]++
				}
				// Churn between calls: add and remove other keys.
				var churn []Command
				for range 5 {
					k := "t" + strconv.Itoa(rng.Intn(500))
					ever[k] = true
					if rng.Intn(2) == 0 {
						churn = append(churn, acq(k, 1e9, 1))
					} else {
						churn = append(churn, Reset{Keys: []string{k}})
					}
				}
				apply(t, f, start, churn...)
				if next == 0 {
					break
				}
				cursor = next
			}
			for i := range stable {
				if k := "s" + strconv.Itoa(i); seen[k] != 1 {
					t.Fatalf("stable key %s returned %d times", k, seen[k])
				}
			}
			for k := range seen {
				if !ever[k] {
					t.Fatalf("returned %q, never present", k)
				}
			}
			if min := stable / count; calls < min {
				t.Fatalf("%d calls for %d keys at count %d", calls, stable, count)
			}
		})
	}
}

func TestScanFilterAndExpiry(t *testing.T) {
	f := New(Config{})
	apply(t, f, start, acq("a", 1000, 1), acq("b", 5000, 1), cl("c", 1, 1, 60, 1))
	all := func(now int64, keep ScanFilter) []string {
		var out []string
		for cursor := uint64(0); ; {
			next, keys := f.Scan(cursor, 1, now, keep)
			out = append(out, keys...)
			if cursor = next; cursor == 0 {
				break
			}
		}
		sort.Strings(out)
		return out
	}
	tests := []struct {
		name string
		now  int64
		keep ScanFilter
		want string
	}{
		{"all", 0, nil, "[a b c]"},
		{"a-expired", start + 1000, nil, "[b c]"},
		{"cells", 0, func(_ string, t KeyType) bool { return t == TypeCell }, "[c]"},
		{"throttles", 0, func(_ string, t KeyType) bool { return t == TypeThrottle }, "[a b]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := all(tt.now, tt.keep)
			if s := "[" + joinSpace(got) + "]"; s != tt.want {
				t.Fatalf("scan %s, want %s", s, tt.want)
			}
			keys := f.AllKeys(tt.now, tt.keep)
			sort.Strings(keys)
			if s := "[" + joinSpace(keys) + "]"; s != tt.want {
				t.Fatalf("all keys %s, want %s", s, tt.want)
			}
		})
	}
	if next, keys := f.Scan(^uint64(0), 10, 0, nil); next != 0 || len(keys) > 1 {
		t.Fatalf("scan from the last cursor: %d %v", next, keys)
	}
}

func joinSpace(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}

func TestLookupAndRandomKey(t *testing.T) {
	f := New(Config{})
	if _, ok := f.RandomKey(0, rand.Intn); ok {
		t.Fatal("a random key of an empty state")
	}
	apply(t, f, start, acq("a", 1000, 1), cl("c", 1, 1, 60, 1))
	tests := []struct {
		key     string
		now     int64
		typ     KeyType
		expires int64
	}{
		{"a", start, TypeThrottle, start + 1000},
		{"a", start + 1000, TypeNone, 0},
		{"c", start, TypeCell, start + 60000},
		{"x", start, TypeNone, 0},
	}
	for _, tt := range tests {
		if typ, exp := f.Lookup(tt.key, tt.now); typ != tt.typ || exp != tt.expires {
			t.Errorf("Lookup(%q, %d) = %v, %d; want %v, %d", tt.key, tt.now, typ, exp, tt.typ, tt.expires)
		}
	}
	if TypeCell.String() != "cl.throttle" || TypeThrottle.String() != "throttle" || TypeNone.String() != "none" {
		t.Fatal("type names")
	}
	got := map[string]bool{}
	for range 200 {
		k, ok := f.RandomKey(0, rand.Intn)
		if !ok {
			t.Fatal("no random key")
		}
		got[k] = true
	}
	if !got["a"] || !got["c"] {
		t.Fatalf("random keys %v", got)
	}
	// With "a" expired but not pruned, every pick lands on "c" eventually,
	// even if the picker always points at "a".
	_, ra := f.ks.get("a")
	idx := int(ra.pos)
	for range 20 {
		if k, ok := f.RandomKey(start+1000, func(int) int { return idx }); !ok || k != "c" {
			t.Fatalf("random key %q %v", k, ok)
		}
	}
	if _, ok := f.RandomKey(start+60000, rand.Intn); ok {
		t.Fatal("a random key when every key has expired")
	}
}
