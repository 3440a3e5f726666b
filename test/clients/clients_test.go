// Package clients_test proves that Node.js Redis client libraries (ioredis
// and node-redis) and redis-py work with throttledb: TestNodeClients starts a
// node with a password and a 3-node cluster, then runs the node:test suites
// in test/clients/node against them. It is skipped without node 20+ on PATH
// or without test/clients/node/node_modules (run `npm ci` there).
// TestPythonClient does the same with test/clients/python and Debian's
// python3-redis (python_test.go).
package clients_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestNodeClients runs the Node.js client tests in test/clients/node
// (ioredis and node-redis, with node's built-in test runner) against a
// single node that requires a password and a 3-node cluster without one.
// It is skipped when node is not installed or the npm packages are missing,
// except under CI (CI set), where .ci/run installs them and a skip would
// hide a broken set-up.
func TestNodeClients(t *testing.T) {
	skip := t.Skip
	if os.Getenv("CI") != "" {
		skip = t.Fatal
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		skip("node not installed: the Node.js client tests need node (20 or newer) on PATH")
	}
	// ioredis 6 and node-redis 6 need Node.js 20 or newer.
	ver, err := exec.Command(nodeBin, "-p", "process.versions.node").Output()
	if err != nil {
		t.Fatalf("node -p process.versions.node: %v", err)
	}
	if major, _, _ := strings.Cut(strings.TrimSpace(string(ver)), "."); atoi(major) < 20 {
		skip(fmt.Sprintf("node %s is too old: the Node.js client tests need node 20 or newer", strings.TrimSpace(string(ver))))
	}
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		skip("test/clients/node/node_modules is missing: run `npm ci` in test/clients/node")
	}

	// Read the Node project's files here, so that go test's cache knows the
	// result depends on them and reruns the test when they change.
	files, err := filepath.Glob(filepath.Join(dir, "*.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s (%v)", dir, err)
	}
	for _, f := range append(files, filepath.Join(dir, "package.json"), filepath.Join(dir, "package-lock.json")) {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}

	const password = "node-clients-pw"
	single := testcluster.StartNode(t, testcluster.Options{RequirePass: password})
	cluster := testcluster.Start(t, 3, testcluster.Options{})
	cluster.WaitForLeader(10 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// TAP output has the same summary lines on every node version.
	cmd := exec.CommandContext(ctx, nodeBin, "--test", "--test-reporter=tap")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"THROTTLEDB_ADDR="+single.Addr(),
		"THROTTLEDB_PASSWORD="+password,
		"THROTTLEDB_CLUSTER="+strings.Join(cluster.Addrs(), ","),
		"NO_COLOR=1",
	)
	// node --test runs each test file in a child process: on timeout, kill
	// the whole process group, and WaitDelay bounds the wait for the pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput() // runs and waits for node
	if err != nil {
		t.Fatalf("node --test failed after %v: %v\n%s", time.Since(start).Round(time.Millisecond), err, out)
	}

	// node --test's summary: every test must have run and passed.
	count := func(name string) string {
		m := regexp.MustCompile(`(?m)^# ` + name + ` (\d+)$`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no %q count in node's output:\n%s", name, out)
		}
		return string(m[1])
	}
	pass, fail, cancelled, skipped := count("pass"), count("fail"), count("cancelled"), count("skipped")
	if pass == "0" || fail != "0" || cancelled != "0" || skipped != "0" {
		t.Fatalf("node --test: pass %s, fail %s, cancelled %s, skipped %s\n%s", pass, fail, cancelled, skipped, out)
	}
	t.Logf("node --test: %s tests passed in %v", pass, time.Since(start).Round(time.Millisecond))
	if testing.Verbose() {
		t.Logf("node output:\n%s", out)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
