package bench

import (
	"strings"
	"testing"
)

func TestCheckSpacing(t *testing.T) {
	for _, tc := range []struct {
		name           string
		grants         []grant
		pass           bool
		minGap         int64
		tooClose, shrd int
		first          string
	}{
		{"none", nil, true, -1, 0, 0, ""},
		{"one per key", []grant{{0, 100}, {1, 100}}, true, -1, 0, 0, ""},
		{"spaced, unordered", []grant{{0, 300}, {0, 100}, {0, 200}, {1, 150}, {1, 250}}, true, 100, 0, 0, ""},
		{"too close", []grant{{0, 100}, {0, 199}, {0, 300}}, false, 99, 1, 0, "key p0: slots 100 and 199 are 99 ms apart"},
		{"shared slot", []grant{{2, 500}, {2, 500}, {3, 500}}, false, 0, 1, 1, "key p2: slots 500 and 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := checkSpacing(tc.grants, 100, "p")
			if !s.Checked || s.Pass != tc.pass || s.MinGap != tc.minGap || s.TooClose != tc.tooClose || s.Shared != tc.shrd ||
				s.Grants != len(tc.grants) || !strings.Contains(s.First, tc.first) || (tc.first == "") != (s.First == "") {
				t.Fatalf("checkSpacing: %+v, want pass %v, min gap %d, too close %d, shared %d, first %q",
					s, tc.pass, tc.minGap, tc.tooClose, tc.shrd, tc.first)
			}
		})
	}
}
