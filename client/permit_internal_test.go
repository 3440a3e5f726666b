package client

import (
	"testing"
	"time"
)

// TestDeadlineOfARetriedRequest: a reply to a retry with the same token
// may be an earlier attempt's, so the deadline is moved earlier by the time
// since the first attempt, and a permit whose slop that exceeds is
// unusable (its deadline is before its start).
func TestDeadlineOfARetriedRequest(t *testing.T) {
	recv := time.Unix(1000, 0)
	base := Permit{Granted: true, Wait: 5 * time.Millisecond, ValidAt: time.UnixMilli(10), ExpiresAt: time.UnixMilli(30), Received: recv}
	for _, tc := range []struct {
		early time.Duration
		want  time.Time
	}{
		{0, recv.Add(25 * time.Millisecond)},
		{15 * time.Millisecond, recv.Add(10 * time.Millisecond)},
		{40 * time.Millisecond, recv.Add(-15 * time.Millisecond)},
	} {
		p := base
		p.early = tc.early
		if got := p.Deadline(); !got.Equal(tc.want) {
			t.Errorf("early %v: deadline %v, want %v", tc.early, got.Sub(recv), tc.want.Sub(recv))
		}
	}
}
