package server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestInfoLatency checks that INFO latency reports every stage of the
// writes a node served, in Redis's INFO format, and that INFO (default)
// includes the section.
func TestInfoLatency(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	const writes = 20
	for i := 0; i < writes; i++ {
		if err := c.Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 100).Err(); err != nil {
			t.Fatal(err)
		}
	}
	info := c.Info(ctx, "latency").Val()
	checkLatencyFields(t, info, []latencyField{
		{"latency_proposer_queue", writes},
		{"latency_raft_apply", 1},
		{"latency_log_store", 1},
		{"latency_log_store", writes / 20},
		{"latency_commit_wait", writes / 20},
		{"latency_fsm_apply", writes / 20},
		{"latency_command", writes},
		// Recorded once a reply is written: the last may not be yet.
		{"latency_reply", writes - 1},
		{"batch_commands", 1},
		{"latency_forward_gather", 0},
		{"latency_forward_request", 0},
		{"forward_batch_commands", 0},
		{"forward_requests_in_flight", 0},
	})
	if all := c.Info(ctx).Val(); !strings.Contains(all, "# Latency\r\n") {
		t.Errorf("INFO without arguments has no Latency section")
	}
}

// TestInfoLatencyForwarded checks that a follower's INFO latency reports
// the forwarding requests its writes went in.
func TestInfoLatencyForwarded(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{})
	fc := c.Followers()[0].Client()
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := fc.Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 100).Err(); err != nil {
			t.Fatal(err)
		}
	}
	checkLatencyFields(t, fc.Info(ctx, "latency").Val(), []latencyField{
		{"latency_forward_gather", 1},
		{"latency_forward_request", 1},
		{"forward_batch_commands", 1},
		{"forward_requests_in_flight", 1},
		// A follower writes and applies the entries too, and its clients'
		// replies are timed from the leader's answer.
		{"latency_log_store", 1},
		{"latency_commit_wait", 1},
		{"latency_reply", 4},
	})
}

// latencyField is an INFO latency field and the count it must reach.
type latencyField struct {
	field    string
	minCount int // at least
}

// checkLatencyFields checks that the INFO latency section info has each
// field, in Redis's INFO format, with at least its count, and for a
// latency_ field, percentiles in order.
func checkLatencyFields(t *testing.T, info string, tests []latencyField) {
	t.Helper()
	if !strings.HasPrefix(info, "# Latency\r\n") {
		t.Fatalf("INFO latency:\n%s", info)
	}
	fields := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(info), "\r\n")[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("line %q is not name:value", line)
		}
		fields[name] = map[string]string{}
		for _, kv := range strings.Split(value, ",") {
			k, v, _ := strings.Cut(kv, "=")
			fields[name][k] = v
		}
	}
	for _, tt := range tests {
		f, ok := fields[tt.field]
		if !ok {
			t.Errorf("no %s in:\n%s", tt.field, info)
			continue
		}
		if n, err := strconv.Atoi(f["count"]); err != nil || n < tt.minCount {
			t.Errorf("%s count %q, want at least %d", tt.field, f["count"], tt.minCount)
		}
		if strings.HasPrefix(tt.field, "latency_") {
			p50, err1 := strconv.ParseFloat(f["p50_usec"], 64)
			p99, err2 := strconv.ParseFloat(f["p99_usec"], 64)
			mx, err3 := strconv.ParseFloat(f["max_usec"], 64)
			if err1 != nil || err2 != nil || err3 != nil || p50 > p99 || p99 > mx {
				t.Errorf("%s: p50 %q p99 %q max %q, want numbers in order", tt.field, f["p50_usec"], f["p99_usec"], f["max_usec"])
			}
		}
	}
}
