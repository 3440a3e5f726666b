package server_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// withMetrics turns --metrics-addr on, on a free loopback port.
func withMetrics(c *server.Config) { c.MetricsAddr = "127.0.0.1:0" }

// httpGet returns the status and body of GET http://addr/path.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// sample returns the value of the series (name with its labels, exactly as
// exposed) in a Prometheus text exposition, and whether it is there.
func sample(body, series string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestMetricsMove checks that /metrics exposes the node's counters and that
// they move with the commands served: per-command calls by outcome, the
// state machine's grants and denials, the command latency summary, and the
// Raft gauges of a one-node leader.
func TestMetricsMove(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{Configure: withMetrics})
	addr := n.Server.MetricsAddr()
	if addr == "" {
		t.Fatal("MetricsAddr is empty with Config.MetricsAddr set")
	}
	c := n.Client()
	ctx := context.Background()
	// Connect first: go-redis's handshake may draw error replies of its own.
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_, before := httpGet(t, addr, "/metrics")
	// max 3 pending: one slot granted now, three reserved, one denied.
	const acquires = 5
	for i := 0; i < acquires; i++ {
		if err := c.Do(ctx, "THROTTLE.ACQUIRE", "k", 60000, 3).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(ctx, "THROTTLE.ACQUIRE", "k", "x", 3).Err(); err == nil {
		t.Fatal("THROTTLE.ACQUIRE with a bad interval succeeded")
	}
	code, after := httpGet(t, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}

	tests := []struct {
		series string
		delta  float64
	}{
		{`throttledb_commands_total{command="throttle.acquire",outcome="ok"}`, acquires},
		{`throttledb_commands_total{command="throttle.acquire",outcome="error"}`, 1},
		{`throttledb_throttle_grants_total`, 1},
		{`throttledb_throttle_reservations_total`, 3},
		{`throttledb_throttle_denials_total`, 0}, // answered without the log:
		{`throttledb_throttle_fast_denials_total`, 1},
		{`throttledb_error_replies_total`, 1},
	}
	for _, tt := range tests {
		b, ok := sample(before, tt.series)
		if !ok {
			t.Errorf("%s missing before the commands", tt.series)
			continue
		}
		a, ok := sample(after, tt.series)
		if !ok || a-b != tt.delta {
			t.Errorf("%s: %v -> %v (present %v), want +%v", tt.series, b, a, ok, tt.delta)
		}
	}
	// Present, with values a one-node leader must have.
	for _, tt := range []struct {
		series string
		check  func(float64) bool
	}{
		{`throttledb_raft_state{state="leader"}`, func(v float64) bool { return v == 1 }},
		{`throttledb_raft_state{state="follower"}`, func(v float64) bool { return v == 0 }},
		{`throttledb_raft_leader_ready`, func(v float64) bool { return v == 1 }},
		{`throttledb_raft_term`, func(v float64) bool { return v >= 1 }},
		{`throttledb_raft_commit_index`, func(v float64) bool { return v >= acquires }},
		{`throttledb_raft_applied_index`, func(v float64) bool { return v >= acquires }},
		{`throttledb_raft_last_contact_seconds`, func(v float64) bool { return v == 0 }},
		{`throttledb_connected_clients`, func(v float64) bool { return v >= 1 }},
		{`throttledb_latency_seconds_count{stage="command"}`, func(v float64) bool { return v >= acquires }},
		{`throttledb_latency_seconds{stage="command",quantile="0.99"}`, func(v float64) bool { return v > 0 }},
		{`throttledb_latency_max_seconds{stage="log_store"}`, func(v float64) bool { return v > 0 }},
		{`throttledb_latency_seconds_count{stage="commit_wait"}`, func(v float64) bool { return v >= 1 }},
		{`throttledb_raft_commit_timeouts_total`, func(v float64) bool { return v == 0 }},
		{`throttledb_raft_queue_timeouts_total`, func(v float64) bool { return v == 0 }},
		{`throttledb_latency_seconds_count{stage="reply"}`, func(v float64) bool { return v >= 1 }},
		{`throttledb_latency_seconds_count{stage="forward_request"}`, func(v float64) bool { return v == 0 }},
		{`go_goroutines`, func(v float64) bool { return v > 0 }},
		{`process_open_fds`, func(v float64) bool { return v > 0 }},
	} {
		if v, ok := sample(after, tt.series); !ok || !tt.check(v) {
			t.Errorf("%s = %v (present %v)", tt.series, v, ok)
		}
	}
}

// TestHealthAndReady checks /healthz and /readyz on a ready one-node
// cluster, and that metrics stop with the node.
func TestHealthAndReady(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{Configure: withMetrics})
	addr := n.Server.MetricsAddr()
	if code, body := httpGet(t, addr, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	// Ready once it has applied what it knows to be committed: right after
	// the election the node's own registration may still be applying.
	var code int
	var body string
	if !testcluster.Poll(10*time.Second, func() bool {
		code, body = httpGet(t, addr, "/readyz")
		return code == http.StatusOK
	}) || body != "ok\n" {
		t.Errorf("/readyz: %d %q, want 200 \"ok\\n\"", code, body)
	}
	n.Stop()
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("/healthz still answers after Close")
	}
}

// TestMetricsOff checks that metrics are off by default.
func TestMetricsOff(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	if a := n.Server.MetricsAddr(); a != "" {
		t.Fatalf("MetricsAddr = %q with metrics off", a)
	}
}

// TestMetricsAddrInUse checks that a --metrics-addr that cannot be bound
// fails Start with ErrMetricsAddr.
func TestMetricsAddrInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = server.Start(context.Background(), server.Config{
		Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(),
		Logger: testcluster.Logger("n1"), MetricsAddr: ln.Addr().String(),
	})
	if !errors.Is(err, server.ErrMetricsAddr) {
		t.Fatalf("Start with a taken metrics address: %v, want ErrMetricsAddr", err)
	}
}

// TestReadyzFollowerLosesLeader checks that a follower is ready while it
// follows a leader and turns unready (503 with a reason) once the rest of
// its cluster is gone and it knows no leader.
func TestReadyzFollowerLosesLeader(t *testing.T) {
	c := testcluster.Start(t, 3, testcluster.Options{Configure: withMetrics})
	c.WaitForLeader(10 * time.Second)
	f := c.Followers()[0]
	addr := f.Server.MetricsAddr()
	testcluster.WaitFor(t, 10*time.Second, "the follower to be ready", func() bool {
		code, _ := httpGet(t, addr, "/readyz")
		return code == http.StatusOK
	})
	for _, nd := range c.Running() {
		if nd != f {
			nd.Stop()
		}
	}
	var body string
	testcluster.WaitFor(t, 10*time.Second, "/readyz to turn 503", func() bool {
		var code int
		code, body = httpGet(t, addr, "/readyz")
		return code == http.StatusServiceUnavailable
	})
	if strings.Count(body, "\n") != 1 || !strings.Contains(body, "leader") {
		t.Errorf("/readyz body %q, want one line saying there is no leader", body)
	}
	if code, _ := httpGet(t, addr, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d on a serving node without a leader", code)
	}
	_, m := httpGet(t, addr, "/metrics")
	if v, ok := sample(m, `throttledb_raft_state{state="leader"}`); !ok || v != 0 {
		t.Errorf("leaderless follower: raft_state leader = %v (present %v)", v, ok)
	}
}
