package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestOnReply: the option sees every reply a call receives, in order, and
// nothing for a call refused before sending.
func TestOnReply(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := newClient(t, client.Options{Addrs: []string{n.Addr()}})
	ctx := context.Background()
	// Long enough that the Wait below arrives before the reserved slot
	// begins even on a busy machine (at 100 ms it once came after, and was
	// granted at once).
	const iv = time.Second
	type reply struct {
		p   client.Permit
		err error
	}
	var got []reply
	record := client.OnReply(func(p client.Permit, err error) { got = append(got, reply{p, err}) })
	slop := client.WithSlop(time.Second) // a late wake-up on a busy machine is not what this tests

	tests := []struct {
		name string
		call func() (client.Permit, error)
		want []string // each reply: "now", "reserved", "granted" (either), "denied" or "error"
	}{
		{"acquire now", func() (client.Permit, error) { return c.Acquire(ctx, "k", iv, 1, record, slop) }, []string{"now"}},
		{"acquire a reservation", func() (client.Permit, error) { return c.Acquire(ctx, "k", iv, 1, record, slop) }, []string{"reserved"}},
		{"peek: denied", func() (client.Permit, error) { return c.Peek(ctx, "k", iv, 1, record, slop) }, []string{"denied"}},
		// max 1 and one slot reserved: Wait is denied until that slot
		// opens, then is granted (a reservation, or now on a machine so
		// busy its retry came a whole interval late).
		{"wait through a denial", func() (client.Permit, error) { return c.Wait(ctx, "k", iv, 1, record, slop) }, []string{"denied", "granted"}},
		{"refused before sending", func() (client.Permit, error) { return c.Acquire(ctx, "", iv, 1, record) }, nil},
		{"context ended", func() (client.Permit, error) {
			done, cancel := context.WithCancel(ctx)
			cancel()
			return c.Acquire(done, "k2", iv, 1, record)
		}, []string{"error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			p, err := tc.call()
			var kinds []string
			for _, r := range got {
				switch {
				case r.err != nil:
					kinds = append(kinds, "error")
				case !r.p.Granted:
					kinds = append(kinds, "denied")
				case r.p.Wait > 0:
					kinds = append(kinds, "reserved")
				default:
					kinds = append(kinds, "now")
				}
			}
			if len(kinds) != len(tc.want) {
				t.Fatalf("replies %v, want %v", kinds, tc.want)
			}
			for i := range kinds {
				if kinds[i] != tc.want[i] && !(tc.want[i] == "granted" && (kinds[i] == "now" || kinds[i] == "reserved")) {
					t.Fatalf("replies %v, want %v", kinds, tc.want)
				}
			}
			// The last reply reported is the call's own outcome.
			if len(got) > 0 {
				last := got[len(got)-1]
				if last.p != p || (err != last.err && !errors.Is(err, last.err)) {
					t.Fatalf("last reply %+v %v, call returned %+v %v", last.p, last.err, p, err)
				}
			}
		})
	}
}
