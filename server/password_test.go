package server_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestPasswordComparison: whatever the length of a wrong password (the
// comparison is of SHA-256 digests, so length makes no difference to it),
// AUTH and HELLO AUTH refuse it with WRONGPASS, and accept the right one.
func TestPasswordComparison(t *testing.T) {
	const pw = "correct horse battery staple"
	const wrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	n := testcluster.StartNode(t, testcluster.Options{RequirePass: pw})
	ctx := context.Background()
	tests := []struct {
		name, pass string
		ok         bool
	}{
		{"right", pw, true},
		{"empty", "", false},
		{"one byte", "c", false},
		{"prefix", pw[:len(pw)-1], false},
		{"same length", "correct horse battery stapli", false},
		{"longer", pw + "!", false},
		{"much longer", pw + pw + pw + pw, false},
		{"nul inside", pw[:5] + "\x00" + pw[6:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, how := range [][]any{
				{"AUTH", tt.pass},
				{"AUTH", "default", tt.pass},
				{"HELLO", 2, "AUTH", "default", tt.pass},
				{"HELLO", 3, "AUTH", "default", tt.pass},
			} {
				// A fresh connection each time: one authenticated by an
				// earlier command would prove nothing.
				c := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, Protocol: 2})
				err := c.Do(ctx, how...).Err()
				authed := c.Do(ctx, "DBSIZE").Err() == nil
				c.Close()
				switch {
				case tt.ok && (err != nil || !authed):
					t.Errorf("%v: %v (session authenticated: %v), want success", how[:len(how)-1], err, authed)
				case !tt.ok && (err == nil || err.Error() != wrongPass || authed):
					t.Errorf("%v: %v (session authenticated: %v), want %q", how[:len(how)-1], err, authed, wrongPass)
				}
			}
		})
	}
	other := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer other.Close()
	if err := other.Do(ctx, "AUTH", "someone", pw).Err(); err == nil || err.Error() != wrongPass {
		t.Errorf("AUTH with the right password for another user: %v, want %q", err, wrongPass)
	}
}
