package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcluster"
)

func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	src := newClient(t, client.Options{Addrs: []string{testcluster.StartNode(t, testcluster.Options{}).Addr()}})
	dst := newClient(t, client.Options{Addrs: []string{testcluster.StartNode(t, testcluster.Options{ID: "other"}).Addr()}})

	var last client.Permit
	for range 2 {
		var err error
		if last, err = src.Acquire(ctx, "api-token", time.Hour, 3); err != nil {
			t.Fatal(err)
		}
	}
	img, err := src.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("bad images", func(t *testing.T) {
		if _, err := dst.Restore(ctx, nil); !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("empty image: %v, want ErrInvalidArgument", err)
		}
		_, err := dst.Restore(ctx, []byte("not a backup"))
		if err == nil || errors.Is(err, client.ErrClusterDown) || errors.Is(err, client.ErrOutcomeUnknown) ||
			!strings.Contains(err.Error(), "invalid backup") {
			t.Errorf("garbage image: %v, want the server's invalid backup error", err)
		}
	})

	n, err := dst.Restore(ctx, img)
	if err != nil || n != 1 {
		t.Fatalf("Restore: %d keys, %v; want 1", n, err)
	}
	next, err := dst.Acquire(ctx, "api-token", time.Hour, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := next.ValidAt.Sub(last.ValidAt); got != time.Hour {
		t.Fatalf("after restore the next slot is %v after the backup's last, want 1h", got)
	}
}
