package cluster_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// runNodeExpectingFailure runs the binary as a node with args and env added
// to the test's environment, and returns its output; the node must exit
// with status code (1: refused to start, 2: bad flag) without serving.
func runNodeExpectingFailure(t *testing.T, code int, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append([]string{"--addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != code {
		t.Fatalf("%v: %v, want exit status %d:\n%s", args, err, code, out)
	}
	return string(out)
}

// TestPasswordSources runs the real binary with each way of giving the
// password, and with conflicting ones.
func TestPasswordSources(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("file", func(t *testing.T) {
		p := testcluster.StartProc(t, bin, testcluster.ProcOptions{Args: []string{"--requirepass-file", file}})
		anon := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		defer anon.Close()
		if err := anon.Do(ctx, "DBSIZE").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Fatalf("without a password: %v, want NOAUTH", err)
		}
		c := redis.NewClient(&redis.Options{Addr: p.Addr(), Password: "from-a-file", MaxRetries: -1})
		defer c.Close()
		if err := c.Do(ctx, "DBSIZE").Err(); err != nil {
			t.Fatalf("with the file's password: %v", err)
		}
	})

	t.Run("environment, for the node and the tools", func(t *testing.T) {
		// testcluster gives RequirePass in THROTTLEDB_PASSWORD.
		p := testcluster.StartProc(t, bin, testcluster.ProcOptions{RequirePass: "from-the-env"})
		testcluster.WaitFor(t, 10*time.Second, "the node to lead", func() bool {
			_, err := acquire(ctx, p.Client(), "k", 1000, 1)
			return err == nil
		})
		if p.Logged("from-the-env") {
			t.Fatal("the node logged its password")
		}
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.Pid())); err == nil && strings.Contains(string(cmdline), "from-the-env") {
			t.Fatalf("the password is on the node's command line: %q", cmdline)
		}
		backup := filepath.Join(t.TempDir(), "b")
		cmd := exec.Command(bin, "backup", "--addr", p.Addr(), "--file", backup)
		cmd.Env = append(os.Environ(), "THROTTLEDB_PASSWORD=from-the-env")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("backup with the password in the environment: %v\n%s", err, out)
		}
		cmd = exec.Command(bin, "backup", "--addr", p.Addr(), "--file", backup, "--password", "x")
		cmd.Env = append(os.Environ(), "THROTTLEDB_PASSWORD=from-the-env")
		if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "--password, THROTTLEDB_PASSWORD are all set") {
			t.Fatalf("backup with --password and THROTTLEDB_PASSWORD printed %q", out)
		}
	})

	t.Run("conflicts", func(t *testing.T) {
		for _, tt := range []struct {
			code int
			env  []string
			args []string
			want string
		}{
			{1, nil, []string{"--requirepass", "a", "--requirepass-file", file}, "--requirepass, --requirepass-file are all set"},
			{1, []string{"THROTTLEDB_PASSWORD=b"}, []string{"--requirepass", "a"}, "--requirepass, THROTTLEDB_PASSWORD are all set"},
			{1, []string{"THROTTLEDB_PASSWORD=b"}, []string{"--requirepass-file", file}, "--requirepass-file, THROTTLEDB_PASSWORD are all set"},
			{1, nil, []string{"--requirepass-file", filepath.Join(dir, "missing")}, "bad password file"},
			{2, nil, []string{"--maxmemory", "1tb"}, "invalid memory size"},
		} {
			if out := runNodeExpectingFailure(t, tt.code, tt.env, tt.args...); !strings.Contains(out, tt.want) {
				t.Errorf("%v %v printed %q, want %q", tt.env, tt.args, out, tt.want)
			}
		}
	})
}

// TestMaxMemoryFlag: --maxmemory, with a unit, caps the keys a real node
// creates, and the refusal is Redis's OOM error.
func TestMaxMemoryFlag(t *testing.T) {
	ctx := context.Background()
	// 1K is 1000 bytes: room for 1000/fsm.KeyCost keys of one byte, not
	// one more.
	room := int(1000 / fsm.KeyCost("0"))
	key := func(k int) string { return string("0123456789abcdefghijklmnopqrstuvwxyz"[k]) }
	p := testcluster.StartProc(t, bin, testcluster.ProcOptions{Args: []string{"--maxmemory", "1K"}})
	c := p.Client()
	testcluster.WaitFor(t, 10*time.Second, "the node to lead", func() bool {
		_, err := acquire(ctx, c, "0", 60_000, 1)
		return err == nil
	})
	for k := 1; k < room; k++ {
		if _, err := acquire(ctx, c, key(k), 60_000, 1); err != nil {
			t.Fatalf("key %d: %v", k, err)
		}
	}
	if _, err := acquire(ctx, c, key(room), 60_000, 1); err == nil || err.Error() != "OOM command not allowed when used memory > 'maxmemory'." {
		t.Fatalf("key %d of %d: %v, want Redis's OOM error", room+1, room, err)
	}
	if p, err := acquire(ctx, c, "0", 60_000, 1); err != nil || !p.granted {
		t.Fatalf("existing key: %+v %v", p, err)
	}
	used := strconv.FormatInt(int64(room)*fsm.KeyCost("0"), 10)
	if info := testcluster.ParseInfo(c.Info(ctx, "memory").Val()); info["maxmemory"] != "1000" || info["throttle_state_memory"] != used {
		t.Fatalf("INFO maxmemory %q, throttle_state_memory %q; want 1000 and %s", info["maxmemory"], info["throttle_state_memory"], used)
	}
}
