package server_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// TestRaftLogsReachSlog starts a node whose logger writes JSON and checks
// that Raft's own lines arrive as structured records: Raft's message, its
// level, its fields as attributes and the subsystem as "component", not a
// line of hclog text wrapped in a message.
func TestRaftLogsReachSlog(t *testing.T) {
	var buf syncBuffer
	lg := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { c.Logger = lg }})
	var leader map[string]any
	testcluster.WaitFor(t, 10*time.Second, "raft's 'entering leader state' in the log", func() bool {
		for _, l := range buf.lines() {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "entering leader state" {
				leader = rec
				return true
			}
		}
		return false
	})
	if leader["level"] != "INFO" || leader["component"] != "raft" || leader["leader"] == nil {
		t.Fatalf("raft's record lost its level, component or fields: %v", leader)
	}
	for _, l := range buf.lines() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a log line is not JSON (%v): %s", err, l)
		}
		if rec["level"] == "DEBUG" {
			t.Fatalf("a debug record passed an info logger: %s", l)
		}
	}
}
