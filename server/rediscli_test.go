package server_test

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// redisCLI runs redis-cli against addr with stdin as input and returns its
// non-empty output lines. CI installs redis-tools; elsewhere the test is skipped when
// redis-cli is missing.
func redisCLI(t *testing.T, addr string, stdin string, args ...string) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-cli not installed; .ci/run installs redis-tools")
		}
		t.Skip("redis-cli not installed (apt-get install redis-tools)")
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, append([]string{"-h", host, "-p", port}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
	}
	// redis-cli without a terminal prints an empty line after an error.
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestRedisCLI(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	out := redisCLI(t, n.Addr(), "", "THROTTLE.ACQUIRE", "api", "3000", "2")
	if len(out) != 5 || out[0] != "1" || out[1] != "0" || out[4] != "0" {
		t.Fatalf("first acquire: %q", out)
	}
	validAt, _ := strconv.ParseInt(out[2], 10, 64)

	// A session on stdin, as a user would type it: reserve, reserve again,
	// then get denied; errors are printed and the server carries on.
	session := strings.Join([]string{
		"PING",
		"throttle.acquire api 3000 2",
		"THROTTLE.ACQUIRE api 3000 2",
		"THROTTLE.ACQUIRE api 3000 2",
		"THROTTLE.ACQUIRE api 3000",
		"THROTTLE.ACQUIRE api soon 2",
		"DBSIZE",
	}, "\n")
	out = redisCLI(t, n.Addr(), session)
	want := []string{
		"PONG",
		"1", "*", strconv.FormatInt(validAt+3000, 10), strconv.FormatInt(validAt+3300, 10), "1",
		"1", "*", strconv.FormatInt(validAt+6000, 10), strconv.FormatInt(validAt+6300, 10), "2",
		"0", "*", "-1", "-1", "2",
		"ERR wrong number of arguments for 'throttle.acquire' command",
		"ERR value is not an integer or out of range",
		"1",
	}
	if len(out) != len(want) {
		t.Fatalf("session output %q", out)
	}
	for i := range want {
		if want[i] != "*" && out[i] != want[i] {
			t.Fatalf("line %d: got %q want %q; whole output %q", i, out[i], want[i], out)
		}
	}
	// redis-cli's own start-up (COMMAND DOCS for hints) and INFO work.
	info := redisCLI(t, n.Addr(), "", "INFO", "raft")
	if !strings.Contains(strings.Join(info, "\n"), "raft_state:leader") {
		t.Fatalf("INFO raft: %q", info)
	}
}
