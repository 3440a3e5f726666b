package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/launcher"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// The one command: `throttledb cluster --nodes 3` starts three node
// processes that form a cluster (n1 bootstraps, n2 and n3 join it), every
// log line carries its node's prefix, and SIGTERM to the launcher stops
// every child (SIGTERM by pid) and waits for them.
func TestClusterCommand(t *testing.T) {
	cmd := exec.Command(bin, "cluster", "--nodes", "3", "--base-port", "0", "--raft-base-port", "0", "--data", t.TempDir())
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	exited := make(chan error, 1)
	var mu sync.Mutex
	var lines []string
	addrs := map[string]string{}
	pids := map[string]int{}
	pidLine := regexp.MustCompile(`^launcher \| started (n\d+) \(pid (\d+)\)`)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			lines = append(lines, line)
			if id, addr, _, ok := launcher.ParseStarted(line); ok && strings.HasPrefix(line, id+" | ") {
				addrs[id] = addr
			}
			if m := pidLine.FindStringSubmatch(line); m != nil {
				pids[m[1]], _ = strconv.Atoi(m[2])
			}
			mu.Unlock()
			if os.Getenv("THROTTLEDB_TEST_LOG") != "" {
				os.Stderr.WriteString(line + "\n")
			}
		}
	}()
	go func() { err := cmd.Wait(); <-copied; exited <- err }()
	t.Cleanup(func() {
		cmd.Process.Kill() // by pid; a no-op once it has exited
		mu.Lock()
		defer mu.Unlock()
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("launcher output:\n%s", strings.Join(lines, "\n"))
		}
	})
	logged := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}

	if !testcluster.Poll(30*time.Second, func() bool {
		return len(snapshotMap(&mu, addrs)) == 3 && countLogged(&mu, &lines, `msg="joined cluster"`) == 2
	}) {
		t.Fatal("the cluster did not form")
	}
	ctx := context.Background()
	nodes := snapshotMap(&mu, addrs)
	for _, id := range []string{"n1", "n2", "n3"} {
		cl := redis.NewClient(&redis.Options{Addr: nodes[id], MaxRetries: -1})
		defer cl.Close()
		var rows []nodeRow
		if !testcluster.Poll(10*time.Second, func() bool {
			rows, err = raftNodes(ctx, cl)
			return err == nil && len(rows) == 3 && rows[0].respAddr == nodes["n1"] &&
				rows[1].respAddr == nodes["n2"] && rows[2].respAddr == nodes["n3"]
		}) {
			t.Fatalf("%s: RAFT.NODES = %s, %v", id, formatRows(rows), err)
		}
		pm, err := acquire(ctx, cl, "launcher", 1, 0)
		if err != nil || !pm.granted {
			t.Fatalf("ACQUIRE through %s: %+v %v", id, pm, err)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("launcher exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("launcher did not exit within 60s of SIGTERM")
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		if !logged(id + ` | time=`) {
			t.Errorf("no %s-prefixed lines", id)
		}
		if !logged(id+` | time=`) || !logged(`msg="throttledb node stopped" id=`+id) {
			t.Errorf("%s did not stop gracefully", id)
		}
		mu.Lock()
		pid := pids[id]
		mu.Unlock()
		if pid == 0 {
			t.Errorf("no pid logged for %s", id)
		} else if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s (pid %d) still exists after the launcher exited: %v", id, pid, err)
		}
	}
}

func snapshotMap(mu *sync.Mutex, m map[string]string) map[string]string {
	mu.Lock()
	defer mu.Unlock()
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func countLogged(mu *sync.Mutex, lines *[]string, s string) int {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, l := range *lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}
