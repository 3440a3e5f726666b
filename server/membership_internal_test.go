package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// TestMembershipErr: a membership change that may have happened is
// TRYAGAIN, which a joining node retries; one that did not is routed again;
// only other failures are a refusal.
func TestMembershipErr(t *testing.T) {
	tests := []struct {
		err        error
		wantPrefix string
	}{
		{raft.ErrLeadershipLost, "TRYAGAIN"},
		{raft.ErrNotLeader, "NOTLEADER"},
		{raft.ErrLeadershipTransferInProgress, "NOTLEADER"},
		{errors.New("disk full"), "ERR membership change failed"},
	}
	for _, tc := range tests {
		if got := errorText(membershipErr(tc.err)); !strings.HasPrefix(got, tc.wantPrefix) {
			t.Errorf("%v: %q, want %s...", tc.err, got, tc.wantPrefix)
		}
	}
	if membershipErr(nil) != nil {
		t.Error("nil error changed")
	}
}
