package client

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Backup sends RAFT.BACKUP: it returns the cluster's whole throttle state
// (every unexpired key, the cluster clock, the counters) as an opaque image
// for Restore. The leader answers it, so the image holds every grant
// acknowledged before the call.
func (c *Client) Backup(ctx context.Context) ([]byte, error) {
	var img []byte
	err := c.do(ctx, []any{"RAFT.BACKUP"}, func(cmd *redis.Cmd, _, _ time.Time) error {
		s, err := cmd.Text()
		img = []byte(s)
		return err
	})
	return img, err
}

// Restore sends RAFT.RESTORE: it replaces the cluster's whole throttle state
// with img, a Backup taken from this cluster or another, and returns the
// number of unexpired keys it holds. Membership is kept; the cluster clock
// never moves backwards. Grants made after the backup was taken are
// forgotten, so this is for disaster recovery, not normal operation.
//
// A Restore that fails with ErrOutcomeUnknown may be sent again: a second
// restore of the same image leaves the same keys (grants made in between
// are forgotten once more).
func (c *Client) Restore(ctx context.Context, img []byte) (int, error) {
	if len(img) == 0 {
		return 0, fmt.Errorf("%w: empty backup image", ErrInvalidArgument)
	}
	var n int64
	err := c.do(ctx, []any{"RAFT.RESTORE", img}, func(cmd *redis.Cmd, _, _ time.Time) (err error) {
		n, err = cmd.Int64()
		return err
	})
	return int(n), err
}
