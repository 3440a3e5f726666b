package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// awaitExit waits for p's process to exit after a SHUTDOWN and checks that
// it exited with status 0.
func awaitExit(t *testing.T, p *testcluster.Proc) {
	t.Helper()
	if !testcluster.Poll(30*time.Second, func() bool { return !p.Running() }) {
		t.Fatalf("%s still runs 30s after SHUTDOWN", p.ID())
	}
	if err := p.ExitErr(); err != nil {
		t.Fatalf("%s exited with %v after SHUTDOWN, want status 0", p.ID(), err)
	}
	if !p.Logged("SHUTDOWN by a client") {
		t.Errorf("%s did not log that a client's SHUTDOWN stopped it", p.ID())
	}
}

// TestShutdownCommandStopsProcess: go-redis's Shutdown sent to the leader
// of three makes its process exit 0 after handing over leadership, and
// clients hammering the other nodes see no failed request; then redis-cli
// SHUTDOWN stops a follower the same way, printing nothing.
func TestShutdownCommandStopsProcess(t *testing.T) {
	c := testcluster.StartProcCluster(t, bin, 3, testcluster.ProcOptions{})
	waitMembers(t, c, c.Procs)
	ctx := context.Background()

	old := c.WaitForLeader(10 * time.Second)
	var targets []*testcluster.Proc
	for _, p := range c.Running() {
		if p != old {
			targets = append(targets, p)
		}
	}
	const interval = 20
	h := startHammer(t, targets, 10, []string{"s-a", "s-b"}, interval, 5)
	if !testcluster.Poll(10*time.Second, func() bool { return checkGrantsQuiet(h.snapshot()) >= 20 }) {
		h.stop()
		t.Fatalf("no grants before SHUTDOWN: %s", summarize(h.snapshot()))
	}
	changedAt := time.Now()
	// go-redis's Shutdown reports success when the server closes the
	// connection without a reply, and fails on any reply.
	if err := old.Client().Shutdown(ctx).Err(); err != nil {
		h.stop()
		t.Fatalf("SHUTDOWN of leader %s: %v", old.ID(), err)
	}
	awaitExit(t, old)
	if !old.Logged("transferring leadership before shutdown") {
		t.Errorf("leader %s did not transfer leadership on SHUTDOWN", old.ID())
	}
	nl := c.WaitForLeader(10 * time.Second)
	if !grantsResume(h, changedAt, targets) {
		t.Errorf("no grants after SHUTDOWN")
	}
	outs := h.stop()
	checkGrants(t, outs, interval)
	for i, o := range errorsOf(outs) {
		if i == 10 {
			break
		}
		t.Errorf("request through %s failed %v after SHUTDOWN: %v", o.node, o.recv.Sub(changedAt).Round(time.Millisecond), o.err)
	}
	t.Logf("leader %s -> %s; outcomes: %s", old.ID(), nl.ID(), summarize(outs))

	// redis-cli, as an operator types it, on a follower.
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-cli not installed; .ci/run installs redis-tools")
		}
		t.Skip("redis-cli not installed (apt-get install redis-tools)")
	}
	var f *testcluster.Proc
	for _, p := range c.Running() {
		if p != nl {
			f = p
		}
	}
	host, port, _ := strings.Cut(f.Addr(), ":")
	out, err := exec.Command(cli, "-h", host, "-p", port, "SHUTDOWN", "NOSAVE").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("redis-cli SHUTDOWN NOSAVE on %s: %v, output %q; want no output", f.ID(), err, out)
	}
	awaitExit(t, f)
	if _, err := nl.Client().Do(ctx, "PING").Result(); err != nil {
		t.Fatalf("the remaining node %s: %v", nl.ID(), err)
	}
}
