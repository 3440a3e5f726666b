package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// stopLikeMain does for n what cmd/throttledb does: once a client's
// SHUTDOWN asks the node to stop, it runs Shutdown and sends its result.
func stopLikeMain(t *testing.T, n *testcluster.Node) <-chan error {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	out := make(chan error, 1)
	srv := n.Server
	go func() {
		select {
		case <-srv.StopRequested():
		case <-done:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out <- srv.Shutdown(ctx)
	}()
	return out
}

// awaitStopped waits for stopLikeMain's Shutdown to return, and fails the
// test if it fails or takes more than 30 s.
func awaitStopped(t *testing.T, n *testcluster.Node, stopped <-chan error) {
	t.Helper()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown of %s after SHUTDOWN: %v", n.ID(), err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s of SHUTDOWN", n.ID())
	}
	if nc, err := net.DialTimeout("tcp", n.Addr(), time.Second); err == nil {
		nc.Close()
		t.Fatalf("%s still accepts connections after SHUTDOWN", n.ID())
	}
	n.Stop() // already closed: marks it stopped for the cluster helpers
}

// hangsUp sends a command and checks that the node closed the connection
// without a reply, as Redis does on a successful SHUTDOWN.
func hangsUp(t *testing.T, c *redis.Client, args ...any) {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("%v: reply %v, error %v; want the connection closed without a reply", args, v, err)
	}
}

// stopRequested reports whether n's StopRequested channel is closed.
func stopRequested(n *testcluster.Node) bool {
	select {
	case <-n.Server.StopRequested():
		return true
	default:
		return false
	}
}

func TestShutdownErrors(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	tests := []struct {
		name string
		args []any
		want string
	}{
		{"unknown-option", []any{"SHUTDOWN", "SAFE"}, "ERR syntax error"},
		{"unknown-after-known", []any{"shutdown", "now", "later"}, "ERR syntax error"},
		{"save-and-nosave", []any{"SHUTDOWN", "SAVE", "NOSAVE"}, "ERR syntax error"},
		{"abort-with-now", []any{"SHUTDOWN", "ABORT", "NOW"}, "ERR syntax error"},
		{"abort-with-force", []any{"SHUTDOWN", "FORCE", "ABORT"}, "ERR syntax error"},
		{"abort-nothing", []any{"SHUTDOWN", "ABORT"}, "ERR No shutdown in progress."},
		{"forwarded", []any{"RAFT.FWD", "SHUTDOWN"}, "ERR SHUTDOWN is not forwarded: send it to the node to stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, got := do(t, c, tt.args...)
			if got != tt.want {
				t.Fatalf("got reply %v error %q, want error %q", v, got, tt.want)
			}
		})
	}

	// Inside MULTI: refused in Redis's words, and the transaction fails.
	ctx := context.Background()
	conn := c.Conn()
	defer conn.Close()
	for _, step := range []struct {
		args []any
		want string
	}{
		{[]any{"MULTI"}, ""},
		{[]any{"SHUTDOWN"}, "ERR Command not allowed inside a transaction"},
		{[]any{"EXEC"}, "EXECABORT Transaction discarded because of previous errors."},
	} {
		err := conn.Do(ctx, step.args...).Err()
		if (err == nil && step.want != "") || (err != nil && err.Error() != step.want) {
			t.Fatalf("%v: error %v, want %q", step.args, err, step.want)
		}
	}

	if stopRequested(n) {
		t.Fatal("a refused SHUTDOWN requested the stop")
	}
	if _, e := do(t, c, "PING"); e != "" {
		t.Fatalf("PING after refused SHUTDOWNs: %s", e)
	}
}

func TestShutdownNeedsAuth(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{RequirePass: "pw"})
	anon := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer anon.Close()
	if err := anon.Do(context.Background(), "SHUTDOWN").Err(); err == nil || err.Error() != "NOAUTH Authentication required." {
		t.Fatalf("SHUTDOWN without AUTH: %v", err)
	}
	if stopRequested(n) {
		t.Fatal("SHUTDOWN without AUTH requested the stop")
	}
	stopped := stopLikeMain(t, n)
	hangsUp(t, n.Client(), "SHUTDOWN")
	awaitStopped(t, n, stopped)
}

// TestShutdownPipelined: the replies before SHUTDOWN are written, then the
// connection closes; nothing after it runs.
func TestShutdownPipelined(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	stopped := stopLikeMain(t, n)
	nc, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "PING\r\nECHO a\r\nSHUTDOWN NOSAVE\r\nTHROTTLE.ACQUIRE after 1000 5\r\n"); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("reading until the node hangs up: %v (read %q)", err, got)
	}
	if string(got) != "+PONG\r\n$1\r\na\r\n" {
		t.Fatalf("read %q before the connection closed, want PING's and ECHO's replies only", got)
	}
	awaitStopped(t, n, stopped)
	if n.Server != nil {
		t.Fatal("node still marked running")
	}
}

// TestShutdownAbort: SHUTDOWN ABORT cancels a SHUTDOWN still preparing
// the stop; that SHUTDOWN, and one that arrived meanwhile, get Redis's
// error, and the node carries on.
func TestShutdownAbort(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	entered, release := make(chan struct{}, 2), make(chan struct{})
	server.SetShutdownHook(n.Server, func() {
		entered <- struct{}{}
		<-release
	})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- n.Client().Do(ctx, "SHUTDOWN").Err() }()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("SHUTDOWN never reached its last step")
	}
	second := make(chan error, 1)
	go func() { second <- n.Client().Do(ctx, "SHUTDOWN", "NOW").Err() }()
	testcluster.WaitFor(t, 30*time.Second, "the second SHUTDOWN to wait for the first", func() bool {
		return server.ShutdownWaiters(n.Server) == 1
	})

	c := n.Client()
	if v, e := do(t, c, "SHUTDOWN", "ABORT"); e != "" || v != "OK" {
		t.Fatalf("SHUTDOWN ABORT during a SHUTDOWN: %v %q", v, e)
	}
	close(release)
	for i, ch := range []chan error{first, second} {
		if err := <-ch; err == nil || err.Error() != "ERR Errors trying to SHUTDOWN. Check logs." {
			t.Errorf("SHUTDOWN %d after ABORT: %v, want Redis's error", i+1, err)
		}
	}
	if stopRequested(n) {
		t.Fatal("an aborted SHUTDOWN requested the stop")
	}
	if v, e := do(t, c, "THROTTLE.ACQUIRE", "k", 1000, 5); e != "" || v.([]any)[0].(int64) != 1 {
		t.Fatalf("acquire after the aborted SHUTDOWN: %v %q", v, e)
	}
	if _, e := do(t, c, "SHUTDOWN", "ABORT"); e != "ERR No shutdown in progress." {
		t.Fatalf("SHUTDOWN ABORT with nothing to abort: %q", e)
	}

	// Without ABORT the next SHUTDOWN stops the node.
	server.SetShutdownHook(n.Server, nil)
	stopped := stopLikeMain(t, n)
	hangsUp(t, c, "SHUTDOWN")
	awaitStopped(t, n, stopped)
}

// TestShutdownSave: SAVE takes a snapshot before stopping; when the
// snapshot fails the node keeps running, unless FORCE.
func TestShutdownSave(t *testing.T) {
	t.Run("saves", func(t *testing.T) {
		n := testcluster.StartNode(t, testcluster.Options{})
		c := n.Client()
		if _, e := do(t, c, "THROTTLE.ACQUIRE", "k", 1000, 5); e != "" {
			t.Fatal(e)
		}
		stopped := stopLikeMain(t, n)
		hangsUp(t, c, "SHUTDOWN", "SAVE")
		awaitStopped(t, n, stopped)
		metas, _ := filepath.Glob(filepath.Join(n.DataDir(), "snapshots", "*", "meta.json"))
		if len(metas) == 0 {
			t.Fatal("SHUTDOWN SAVE left no snapshot")
		}
	})
	t.Run("fails", func(t *testing.T) {
		n := testcluster.StartNode(t, testcluster.Options{})
		c := n.Client()
		if _, e := do(t, c, "THROTTLE.ACQUIRE", "k", 1000, 5); e != "" {
			t.Fatal(e)
		}
		// A file where the snapshot directory was: every snapshot fails,
		// even for root.
		snaps := filepath.Join(n.DataDir(), "snapshots")
		if err := os.RemoveAll(snaps); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snaps, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		stopped := stopLikeMain(t, n)
		if _, e := do(t, c, "SHUTDOWN", "SAVE"); e != "ERR Errors trying to SHUTDOWN. Check logs." {
			t.Fatalf("SHUTDOWN SAVE with a failing snapshot: %q", e)
		}
		if stopRequested(n) {
			t.Fatal("a failed SHUTDOWN SAVE requested the stop")
		}
		if v, e := do(t, c, "THROTTLE.ACQUIRE", "k", 1000, 5); e != "" || v.([]any)[0].(int64) != 1 {
			t.Fatalf("acquire after the failed SHUTDOWN SAVE: %v %q", v, e)
		}
		// FORCE: the failed snapshot does not stop the shutdown.
		hangsUp(t, c, "SHUTDOWN", "SAVE", "FORCE")
		awaitStopped(t, n, stopped)
	})
}

// acquireLoad runs clients that acquire through c (node's client), each on
// its own key with room for every request, until stop is called; stop
// returns every error.
type acquireLoad struct {
	node    string
	mu      sync.Mutex
	granted int
	errs    []error
	quit    chan struct{}
	wg      sync.WaitGroup
}

func startAcquireLoad(c *redis.Client, clients int, node string) *acquireLoad {
	l := &acquireLoad{node: node, quit: make(chan struct{})}
	for i := 0; i < clients; i++ {
		l.wg.Add(1)
		go func(key string) {
			defer l.wg.Done()
			for {
				select {
				case <-l.quit:
					return
				default:
				}
				v, err := c.Do(context.Background(), "THROTTLE.ACQUIRE", key, 60000, 1<<40).Result()
				l.mu.Lock()
				switch {
				case err != nil:
					l.errs = append(l.errs, fmt.Errorf("through %s: %w", node, err))
				case v.([]any)[0].(int64) == 1:
					l.granted++
				default:
					l.errs = append(l.errs, fmt.Errorf("denied: %v", v))
				}
				l.mu.Unlock()
			}
		}(fmt.Sprintf("load-%s-%d", node, i))
	}
	return l
}

func (l *acquireLoad) grants() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.granted
}

func (l *acquireLoad) stop() []error {
	close(l.quit)
	l.wg.Wait()
	return l.errs
}

// logged reports whether node id logged a line containing msg.
func logged(buf *syncBuffer, id, msg string) bool {
	for _, l := range buf.lines() {
		if strings.Contains(l, "node="+id) && strings.Contains(l, msg) {
			return true
		}
	}
	return false
}

// captureLogs makes every node log, with its ID, to buf.
func captureLogs(buf *syncBuffer) func(*server.Config) {
	return func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(buf, nil)).With("node", cfg.ID)
	}
}

// TestShutdownLeaderFailsNoRequest: SHUTDOWN sent to the leader of three
// hands leadership over and stops that node, while a client of another
// node sees no failed request.
func TestShutdownLeaderFailsNoRequest(t *testing.T) {
	var logs syncBuffer
	c := testcluster.Start(t, 3, testcluster.Options{Configure: captureLogs(&logs)})
	leader := c.WaitForLeader(10 * time.Second)
	// Clients of both followers: one of them becomes the leader, the
	// other forwards to it.
	var loads []*acquireLoad
	for _, f := range c.Followers() {
		loads = append(loads, startAcquireLoad(f.Client(), 2, f.ID()))
	}
	grants := func() int {
		n := 0
		for _, l := range loads {
			n += l.grants()
		}
		return n
	}
	stopLoads := func() (errs []error) {
		for _, l := range loads {
			errs = append(errs, l.stop()...)
		}
		return errs
	}
	testcluster.WaitFor(t, 10*time.Second, "grants before SHUTDOWN", func() bool { return grants() >= 20 })

	stopped := stopLikeMain(t, leader)
	if err := leader.Client().Shutdown(context.Background()).Err(); err != nil {
		stopLoads()
		t.Fatalf("SHUTDOWN of the leader: %v", err)
	}
	awaitStopped(t, leader, stopped)
	if !logged(&logs, leader.ID(), "transferring leadership before shutdown") {
		t.Error("the leader stopped without handing over leadership")
	}
	nl := c.WaitForLeader(10 * time.Second)
	// Grants through each remaining node, the forwarding one included.
	after := make([]int, len(loads))
	for i, l := range loads {
		after[i] = l.grants()
	}
	testcluster.WaitFor(t, 10*time.Second, "grants through each node after SHUTDOWN", func() bool {
		for i, l := range loads {
			if l.grants() < after[i]+20 {
				return false
			}
		}
		return true
	})
	errs := stopLoads()
	for i, err := range errs {
		if i == 10 {
			break
		}
		t.Errorf("request failed: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d requests failed (new leader %s)", len(errs), nl.ID())
	}
	t.Logf("leader %s -> %s; %d grants through %s and %s, none failed", leader.ID(), nl.ID(), grants(), loads[0].node, loads[1].node)
}

// TestShutdownNowSkipsTransfer: SHUTDOWN NOW stops the leader without
// handing over leadership; the others elect a leader and serve.
func TestShutdownNowSkipsTransfer(t *testing.T) {
	var logs syncBuffer
	c := testcluster.Start(t, 3, testcluster.Options{Configure: captureLogs(&logs)})
	leader := c.WaitForLeader(10 * time.Second)
	stopped := stopLikeMain(t, leader)
	hangsUp(t, leader.Client(), "SHUTDOWN", "NOW")
	awaitStopped(t, leader, stopped)
	if !logged(&logs, leader.ID(), "SHUTDOWN requested") || !logged(&logs, leader.ID(), "throttledb node stopped") {
		t.Fatal("the leader's log lacks its SHUTDOWN")
	}
	if logged(&logs, leader.ID(), "transferring leadership") {
		t.Error("SHUTDOWN NOW transferred leadership")
	}
	nl := c.WaitForLeader(10 * time.Second)
	if nl == leader {
		t.Fatal("the stopped node still leads")
	}
	via := c.Followers()[0].Client()
	testcluster.WaitFor(t, 10*time.Second, "a grant through a remaining node", func() bool {
		v, err := via.Do(context.Background(), "THROTTLE.ACQUIRE", "k", 1000, 5).Result()
		return err == nil && v.([]any)[0].(int64) == 1
	})
}

// TestShutdownPastCancelling: once a SHUTDOWN has requested the stop,
// ABORT can no longer cancel it, and another SHUTDOWN just hangs up.
func TestShutdownPastCancelling(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	hangsUp(t, n.Client(), "SHUTDOWN")
	if !stopRequested(n) {
		t.Fatal("SHUTDOWN did not request the stop")
	}
	// Nothing runs Shutdown here, so the node still answers.
	c := n.Client()
	if _, e := do(t, c, "SHUTDOWN", "ABORT"); e != "CLUSTERDOWN node is shutting down" {
		t.Fatalf("SHUTDOWN ABORT after the stop was requested: %q", e)
	}
	hangsUp(t, c, "SHUTDOWN", "SAVE")
	stopped := stopLikeMain(t, n)
	awaitStopped(t, n, stopped)
}
