package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/cmd/throttledb/internal/launcher"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// The throttledb binary, built once for the tests that run it as a process.
var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary returns the path of the throttledb binary, building it on first
// use.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "throttledb-bin-"); buildErr == nil {
			builtBin, buildErr = testcluster.BuildBinary(buildDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// clusterRun is `throttledb cluster` running as a process, with its output
// collected and its stdin open for commands.
type clusterRun struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan error

	mu    sync.Mutex
	lines []string
	addrs map[string]string // node ID -> RESP address, from its latest start
	pids  map[string][]int  // node ID -> pid of each start, in order
}

var pidLine = regexp.MustCompile(`^launcher \| started (n\d+) \(pid (\d+)\)`)

// startClusterRun starts `throttledb cluster` with args. At cleanup it kills
// the launcher and any node still alive, by pid.
func startClusterRun(t *testing.T, args ...string) *clusterRun {
	t.Helper()
	r := &clusterRun{t: t, cmd: exec.Command(binary(t), append([]string{"cluster"}, args...)...),
		exited: make(chan error, 1), addrs: map[string]string{}, pids: map[string][]int{}}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = pw, pw
	if r.stdin, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.lines = append(r.lines, line)
			if id, addr, _, ok := launcher.ParseStarted(line); ok && strings.HasPrefix(line, id+" | ") {
				r.addrs[id] = addr
			}
			if m := pidLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[2])
				r.pids[m[1]] = append(r.pids[m[1]], pid)
			}
			r.mu.Unlock()
			if os.Getenv("THROTTLEDB_TEST_LOG") != "" {
				os.Stderr.WriteString(line + "\n")
			}
		}
	}()
	go func() { err := r.cmd.Wait(); <-copied; r.exited <- err }()
	t.Cleanup(func() {
		r.cmd.Process.Kill() // by pid; a no-op once it has exited
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, pids := range r.pids {
			for _, pid := range pids {
				if syscall.Kill(pid, 0) == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if t.Failed() {
			t.Logf("launcher output:\n%s", strings.Join(r.lines, "\n"))
		}
	})
	return r
}

// count returns how many output lines contain s.
func (r *clusterRun) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func (r *clusterRun) addr(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs[id]
}

func (r *clusterRun) pidsOf(id string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.pids[id]...)
}

// waitFormed waits until n nodes have reported their addresses and n-1 have
// joined.
func (r *clusterRun) waitFormed(n int) {
	r.t.Helper()
	if !testcluster.Poll(30*time.Second, func() bool {
		r.mu.Lock()
		started := len(r.addrs)
		r.mu.Unlock()
		return started == n && r.count(`msg="joined cluster"`) == n-1
	}) {
		r.t.Fatal("the cluster did not form")
	}
}

// send types a command line on the launcher's stdin.
func (r *clusterRun) send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		r.t.Fatal(err)
	}
}

// term sends the launcher SIGTERM and waits for it to exit.
func (r *clusterRun) term() {
	r.t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		if err != nil {
			r.t.Errorf("launcher exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		r.t.Fatal("launcher did not exit within 60s of SIGTERM")
	}
}

// gone reports whether no process has pid (the launcher reaped it).
func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

// respAddrs returns the RESP addresses RAFT.NODES lists, ordered by node ID.
func respAddrs(ctx context.Context, c *redis.Client) ([]string, error) {
	v, err := c.Do(ctx, "RAFT.NODES").Slice()
	if err != nil {
		return nil, err
	}
	type row struct{ id, addr string }
	var rows []row
	for _, r := range v {
		f, ok := r.([]any)
		if !ok || len(f) != 5 {
			return nil, fmt.Errorf("bad RAFT.NODES row %v", r)
		}
		id, _ := f[0].(string)
		addr, _ := f[2].(string)
		rows = append(rows, row{id, addr})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.addr
	}
	return out, nil
}

// acquire sends THROTTLE.ACQUIRE key interval max and returns its reply.
func acquire(ctx context.Context, c *redis.Client, key string, interval, max int64) ([]int64, error) {
	return c.Do(ctx, "THROTTLE.ACQUIRE", key, interval, max).Int64Slice()
}

// TestClusterCommand is the one command: `throttledb cluster --nodes 3`
// starts three node processes that form a cluster (n1 bootstraps, n2 and n3
// join it), every log line carries its node's prefix, and SIGTERM to the
// launcher stops every child (SIGTERM by pid) and waits for them.
func TestClusterCommand(t *testing.T) {
	r := startClusterRun(t, "--nodes", "3", "--base-port", "0", "--raft-base-port", "0", "--data", t.TempDir())
	r.waitFormed(3)
	ctx := context.Background()
	want := []string{r.addr("n1"), r.addr("n2"), r.addr("n3")}
	for _, id := range []string{"n1", "n2", "n3"} {
		cl := redis.NewClient(&redis.Options{Addr: r.addr(id), MaxRetries: -1})
		defer cl.Close()
		var got []string
		var err error
		if !testcluster.Poll(10*time.Second, func() bool {
			got, err = respAddrs(ctx, cl)
			return err == nil && strings.Join(got, " ") == strings.Join(want, " ")
		}) {
			t.Fatalf("%s: RAFT.NODES addresses %q, want %q (%v)", id, got, want, err)
		}
		if v, err := acquire(ctx, cl, "launcher", 1, 0); err != nil || len(v) != 5 || v[0] != 1 {
			t.Fatalf("ACQUIRE through %s: %v %v", id, v, err)
		}
	}

	r.term()
	for _, id := range []string{"n1", "n2", "n3"} {
		if r.count(id+" | time=") == 0 {
			t.Errorf("no %s-prefixed lines", id)
		}
		if r.count(`msg="throttledb node stopped" id=`+id) == 0 {
			t.Errorf("%s did not stop gracefully", id)
		}
		if pids := r.pidsOf(id); len(pids) != 1 {
			t.Errorf("%s started %d times (pids %v), want once", id, len(pids), pids)
		} else if !gone(pids[0]) {
			t.Errorf("%s (pid %d) still exists after the launcher exited", id, pids[0])
		}
	}
}

// TestClusterRestart types `restart 2` to a running `throttledb cluster`:
// only n2 is stopped (SIGTERM to its pid, a graceful stop), it comes back as
// a new process on the same addresses and data, and the cluster's state
// survives it: through the restarted n2, the key it granted before is still
// taken.
func TestClusterRestart(t *testing.T) {
	r := startClusterRun(t, "--nodes", "3", "--base-port", "0", "--raft-base-port", "0", "--data", t.TempDir())
	r.waitFormed(3)
	ctx := context.Background()
	n2Addr := r.addr("n2")
	c2 := redis.NewClient(&redis.Options{Addr: n2Addr, MaxRetries: -1})
	defer c2.Close()
	// A reservation through n2 before the restart: interval 1 h, max 1.
	if v, err := acquire(ctx, c2, "restart-key", 3600000, 1); err != nil || len(v) != 5 || v[0] != 1 || v[1] != 0 {
		t.Fatalf("first ACQUIRE through n2: %v %v, want granted now", v, err)
	}
	oldPid := r.pidsOf("n2")[0]

	r.send("restart 2")
	if !testcluster.Poll(60*time.Second, func() bool { return len(r.pidsOf("n2")) == 2 }) {
		t.Fatal("n2 was not started again")
	}
	if r.count(fmt.Sprintf("launcher | stopping n2 (SIGTERM to pid %d)", oldPid)) != 1 {
		t.Errorf("the launcher did not say it stopped n2 (pid %d)", oldPid)
	}
	if r.count(`msg="throttledb node stopped" id=n2`) != 1 {
		t.Errorf("n2 did not stop gracefully before its restart")
	}
	if !gone(oldPid) {
		t.Errorf("n2's old process (pid %d) still exists", oldPid)
	}
	for _, id := range []string{"n1", "n3"} {
		if r.count("stopping "+id) != 0 || r.count(`msg="throttledb node stopped" id=`+id) != 0 || len(r.pidsOf(id)) != 1 {
			t.Errorf("%s was stopped or restarted too", id)
		}
	}
	// Back on the same address, serving the same state: the second call is
	// a reservation an hour out, the third is denied.
	var v []int64
	var err error
	if !testcluster.Poll(30*time.Second, func() bool {
		v, err = acquire(ctx, c2, "restart-key", 3600000, 1)
		return err == nil
	}) {
		t.Fatalf("ACQUIRE through the restarted n2: %v", err)
	}
	if r.addr("n2") != n2Addr {
		t.Errorf("n2 came back on %s, was %s", r.addr("n2"), n2Addr)
	}
	if len(v) != 5 || v[0] != 1 || v[1] < 3500000 {
		t.Errorf("second ACQUIRE after the restart: %v, want a reservation about an hour out", v)
	}
	if v, err := acquire(ctx, c2, "restart-key", 3600000, 1); err != nil || len(v) != 5 || v[0] != 0 {
		t.Errorf("third ACQUIRE: %v %v, want denied", v, err)
	}

	r.term()
	for _, id := range []string{"n1", "n2", "n3"} {
		pids := r.pidsOf(id)
		if !gone(pids[len(pids)-1]) {
			t.Errorf("%s (pid %d) still exists after the launcher exited", id, pids[len(pids)-1])
		}
	}
}
