package bench

import (
	"cmp"
	"fmt"
	"slices"
)

// grant is one granted slot, recorded for the spacing check.
type grant struct {
	key  int32 // key number
	slot int64 // valid_at, Unix ms
}

// Spacing is the outcome of the spacing check (Config.Verify).
type Spacing struct {
	// Checked reports that the check ran.
	Checked bool
	// Pass reports that, for every key, consecutive granted slots are at
	// least the interval apart and no two grants share a slot.
	Pass bool
	// Grants is the number of grants checked; Keys the number of keys that
	// had any.
	Grants, Keys int
	// MinGap is the smallest gap in ms between consecutive slots of one
	// key, or -1 when no key had two grants.
	MinGap int64
	// TooClose counts consecutive pairs closer than the interval (Shared
	// included); Shared counts pairs that share a slot.
	TooClose, Shared int
	// First describes the first violation found (keys in order), if any.
	First string
}

// checkSpacing checks grants (in any order, modified) for keys named
// prefix+number, all granted with interval ms.
func checkSpacing(grants []grant, interval int64, prefix string) Spacing {
	s := Spacing{Checked: true, Pass: true, Grants: len(grants), MinGap: -1}
	slices.SortFunc(grants, func(a, b grant) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.slot, b.slot))
	})
	for i := range grants {
		if i == 0 || grants[i].key != grants[i-1].key {
			s.Keys++
			continue
		}
		gap := grants[i].slot - grants[i-1].slot
		if s.MinGap < 0 || gap < s.MinGap {
			s.MinGap = gap
		}
		if gap >= interval {
			continue
		}
		s.Pass = false
		s.TooClose++
		if gap == 0 {
			s.Shared++
		}
		if s.First == "" {
			s.First = fmt.Sprintf("key %s%d: slots %d and %d are %d ms apart, less than the interval %d ms",
				prefix, grants[i].key, grants[i-1].slot, grants[i].slot, gap, interval)
		}
	}
	return s
}
