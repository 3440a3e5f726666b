package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/throttledb/throttledb/server"
)

// readyTimeout bounds the wait for the node to lead.
const readyTimeout = 30 * time.Second

// ErrNotReady is returned by Start when the node does not become the ready
// leader of its one-node cluster within 30 s.
var ErrNotReady = errors.New("embedded server did not become leader")

// Node is a one-node throttledb cluster with a temporary data directory.
type Node struct {
	// Server is the running node; its Addr is where clients connect.
	Server *server.Server
	dir    string
}

// Start starts a one-node cluster on 127.0.0.1 ports chosen by the system,
// with its data in a new temporary directory whose name includes name, and
// returns once the node is the ready leader. Its logs are discarded. Close
// stops it and removes the directory.
func Start(ctx context.Context, name string) (*Node, error) {
	dir, err := os.MkdirTemp("", "throttledb-"+name+"-")
	if err != nil {
		return nil, err
	}
	srv, err := server.Start(ctx, server.Config{
		ID:       name,
		Addr:     "127.0.0.1:0",
		RaftAddr: "127.0.0.1:0",
		DataDir:  dir,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start embedded server: %w", err)
	}
	n := &Node{Server: srv, dir: dir}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !srv.IsLeader() {
		select {
		case <-ctx.Done():
			n.Close()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w within %v", ErrNotReady, readyTimeout)
			}
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	return n, nil
}

// Close stops the node and removes its data directory.
func (n *Node) Close() error {
	err := n.Server.Close()
	if rerr := os.RemoveAll(n.dir); err == nil {
		err = rerr
	}
	return err
}
