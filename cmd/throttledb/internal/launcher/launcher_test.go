package launcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for throttledb: with
// LAUNCHER_FAKE_NODE set it acts as a node that logs its "started" line and
// runs until SIGTERM.
func TestMain(m *testing.M) {
	if os.Getenv("LAUNCHER_FAKE_NODE") != "" {
		fakeNode(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

func fakeNode(args []string) {
	get := func(flag string) string {
		for i, a := range args {
			if a == flag && i+1 < len(args) {
				return args[i+1]
			}
		}
		return ""
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	addr := get("--addr")
	if strings.HasSuffix(addr, ":0") {
		addr = strings.TrimSuffix(addr, ":0") + ":" + fmt.Sprint(40000+os.Getpid()%1000)
	}
	fmt.Fprintf(os.Stderr, "time=x level=INFO msg=\"throttledb node started\" id=%s addr=%s raft=%s data=%s join=%s\n",
		get("--id"), addr, get("--raft-addr"), get("--data"), get("--join"))
	fmt.Fprintln(os.Stdout, "stdout line")
	// What a node was given, for TestRunKeepsThePasswordOffTheCommandLine.
	fmt.Fprintf(os.Stdout, "argv %q\n", os.Args)
	fmt.Fprintf(os.Stdout, "env %s=%s\n", PasswordEnv, os.Getenv(PasswordEnv))
	<-sig
	fmt.Fprintln(os.Stderr, "got SIGTERM")
}

func TestPlan(t *testing.T) {
	nodes := Plan(Config{Nodes: 3, BasePort: 6380, RaftBasePort: 7380, DataDir: "d"})
	want := [][]string{
		{"--id", "n1", "--addr", "127.0.0.1:6380", "--raft-addr", "127.0.0.1:7380", "--data", "d/n1", "--log-level", "debug"},
		{"--id", "n2", "--addr", "127.0.0.1:6381", "--raft-addr", "127.0.0.1:7381", "--data", "d/n2", "--join", "127.0.0.1:6380", "--log-level", "debug"},
		{"--id", "n3", "--addr", "127.0.0.1:6382", "--raft-addr", "127.0.0.1:7382", "--data", "d/n3", "--join", "127.0.0.1:6380", "--log-level", "debug"},
	}
	if len(nodes) != 3 {
		t.Fatalf("got %d nodes", len(nodes))
	}
	for i, n := range nodes {
		if got := n.Args("--log-level", "debug"); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("node %d args:\n got %q\nwant %q", i+1, got, want[i])
		}
	}
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		pass    string
		want    []string
	}{
		{"adds the password", []string{"HOME=/h"}, "pw", []string{"HOME=/h", "THROTTLEDB_PASSWORD=pw"}},
		{"replaces an inherited one", []string{"THROTTLEDB_PASSWORD=old", "HOME=/h"}, "pw", []string{"HOME=/h", "THROTTLEDB_PASSWORD=pw"}},
		{"removes an inherited one when there is none", []string{"THROTTLEDB_PASSWORD=old", "HOME=/h"}, "", []string{"HOME=/h"}},
		{"keeps look-alikes", []string{"THROTTLEDB_PASSWORD_FILE=x", "XTHROTTLEDB_PASSWORD=y"}, "", []string{"THROTTLEDB_PASSWORD_FILE=x", "XTHROTTLEDB_PASSWORD=y"}},
		{"a password with = and spaces", nil, "a=b c", []string{"THROTTLEDB_PASSWORD=a=b c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Env(tt.environ, tt.pass); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Env(%q, %q) = %q, want %q", tt.environ, tt.pass, got, tt.want)
			}
		})
	}
}

func TestShareCPUs(t *testing.T) {
	tests := []struct {
		name        string
		environ     []string
		cpus, nodes int
		want        []string
	}{
		{"2 cores, 3 nodes", []string{"HOME=/h"}, 2, 3, []string{"HOME=/h", "GOMAXPROCS=1"}},
		{"8 cores, 3 nodes", nil, 8, 3, []string{"GOMAXPROCS=2"}},
		{"1 node keeps the machine", nil, 4, 1, []string{"GOMAXPROCS=4"}},
		{"the user's setting wins", []string{"GOMAXPROCS=7", "HOME=/h"}, 2, 3, []string{"GOMAXPROCS=7", "HOME=/h"}},
		{"a look-alike is not a setting", []string{"XGOMAXPROCS=7"}, 2, 3, []string{"XGOMAXPROCS=7", "GOMAXPROCS=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ShareCPUs(tt.environ, tt.cpus, tt.nodes); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ShareCPUs(%q, %d, %d) = %q, want %q", tt.environ, tt.cpus, tt.nodes, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{
		{Nodes: 0},
		{Nodes: 3, BasePort: 65534},
		{Nodes: 3, BasePort: 6380, RaftBasePort: 6382},
		{Nodes: 3, BasePort: -1},
	} {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) accepted a bad config", c)
		}
	}
	if err := (Config{Nodes: 3, BasePort: 6380, RaftBasePort: 7380}).Validate(); err != nil {
		t.Errorf("good config refused: %v", err)
	}
}

func TestParseStarted(t *testing.T) {
	line := `time=2026-01-01T00:00:00Z level=INFO msg="throttledb node started" id=n2 addr=127.0.0.1:41234 raft=127.0.0.1:41235 data=d existing_state=false`
	id, addr, raft, ok := ParseStarted(line)
	if !ok || id != "n2" || addr != "127.0.0.1:41234" || raft != "127.0.0.1:41235" {
		t.Fatalf("ParseStarted = %q %q %q %v", id, addr, raft, ok)
	}
	if _, _, _, ok := ParseStarted(`msg="leader ready"`); ok {
		t.Fatal("matched an unrelated line")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunPrefixesAndStops runs three fake nodes on system-chosen ports: the
// joiners must be told node 1's real address, every line must carry its
// node's prefix, and cancelling must SIGTERM every child and wait for it.
func TestRunPrefixesAndStops(t *testing.T) {
	t.Setenv("LAUNCHER_FAKE_NODE", "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	var mu sync.Mutex
	started := map[string]string{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{
			Binary: exe, Nodes: 3, DataDir: t.TempDir(), Output: out,
			OnStarted: func(id, addr, raftAddr string) {
				mu.Lock()
				started[id] = addr
				mu.Unlock()
			},
		})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(started)
		mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes did not start; output:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return after cancel; output:\n%s", out)
	}
	log := out.String()
	n1 := started["n1"]
	for _, id := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(log, id+" | got SIGTERM") {
			t.Errorf("%s did not get SIGTERM", id)
		}
		if !strings.Contains(log, id+" | stdout line") {
			t.Errorf("%s's stdout was not prefixed", id)
		}
	}
	for _, id := range []string{"n2", "n3"} {
		if !strings.Contains(log, "id="+id+" ") || !strings.Contains(log, "join="+n1) {
			t.Errorf("%s was not told to join n1 at %s", id, n1)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.HasPrefix(line, "n1 | ") && !strings.HasPrefix(line, "n2 | ") &&
			!strings.HasPrefix(line, "n3 | ") && !strings.HasPrefix(line, "launcher | ") {
			t.Errorf("unprefixed line %q", line)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", log)
	}
}

// TestRunKeepsThePasswordOffTheCommandLine runs a fake node with a
// password: the node must find it in its environment (replacing a stale
// one the launcher inherited), and neither its argv nor the launcher's
// own lines may hold it.
func TestRunKeepsThePasswordOffTheCommandLine(t *testing.T) {
	const pw = "launcher-secret-pw"
	t.Setenv("LAUNCHER_FAKE_NODE", "1")
	t.Setenv(PasswordEnv, "stale-inherited-pw")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{Binary: exe, Nodes: 1, DataDir: t.TempDir(), Output: out, RequirePass: pw})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "n1 | env ") {
		if time.Now().After(deadline) {
			t.Fatalf("the node did not report its environment; output:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	log := out.String()
	if !strings.Contains(log, "n1 | env "+PasswordEnv+"="+pw+"\n") {
		t.Errorf("the node's environment lacks %s=%s", PasswordEnv, pw)
	}
	sawArgv := false
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "n1 | argv ") {
			sawArgv = true
		}
		if strings.Contains(line, pw) && !strings.HasPrefix(line, "n1 | env ") {
			t.Errorf("the password shows outside the environment: %q", line)
		}
	}
	if !sawArgv {
		t.Error("the node did not report its argv")
	}
	if t.Failed() {
		t.Logf("output:\n%s", log)
	}
}

// waitOutput waits until out contains s, failing the test after 20 s.
func waitOutput(t *testing.T, out *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output lacks %q:\n%s", s, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunCommands drives two fake nodes through the commands a user types:
// each acts on the node it names only, restart brings a node back on the
// addresses it had, and mistakes get an answer, not a stop.
func TestRunCommands(t *testing.T) {
	t.Setenv("LAUNCHER_FAKE_NODE", "1")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	var mu sync.Mutex
	starts := map[string][]string{} // ID -> RESP address of each start
	cmds, typed := io.Pipe()
	defer typed.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Config{
			Binary: exe, Nodes: 2, DataDir: t.TempDir(), Output: out, Commands: cmds,
			OnStarted: func(id, addr, raftAddr string) {
				mu.Lock()
				starts[id] = append(starts[id], addr)
				mu.Unlock()
			},
		})
	}()
	startsOf := func(id string) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), starts[id]...)
	}
	waitStarts := func(id string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(startsOf(id)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start %d times; output:\n%s", id, n, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	typeLine := func(line string) {
		t.Helper()
		if _, err := io.WriteString(typed, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	waitStarts("n1", 1)
	waitStarts("n2", 1)
	waitOutput(t, out, "launcher | commands (type them here): restart <n>")

	typeLine("nodes")
	waitOutput(t, out, "launcher | n2 pid ")
	waitOutput(t, out, " running, RESP "+startsOf("n2")[0])

	typeLine("restart 2")
	waitStarts("n2", 2)
	if s := startsOf("n2"); s[1] != s[0] {
		t.Errorf("n2 restarted on %s, want its address %s", s[1], s[0])
	}
	for _, want := range []string{"launcher | stopping n2 (SIGTERM to pid ", "n2 | got SIGTERM", ") exited: exit status 0"} {
		waitOutput(t, out, want)
	}

	typeLine("stop n1")
	waitOutput(t, out, "n1 | got SIGTERM")
	typeLine("stop N1")
	waitOutput(t, out, "launcher | n1 is not running")
	typeLine("start 1")
	waitStarts("n1", 2)

	for _, tc := range []struct{ line, want string }{
		{"kill n2", "launcher | killing n2 (SIGKILL to pid "},
		{"kill n2", "launcher | n2 is not running"},
		{"start n2", "launcher | started n2 (pid "},
		{"start n2", "launcher | n2 is already running"},
		{"frobnicate 2", `launcher | unknown command "frobnicate 2"`},
		{"restart 9", `launcher | no node "9": nodes are n1..n2`},
		{"restart", "launcher | usage: restart <node>"},
		{"help", "launcher |   kill <node>"},
	} {
		typeLine(tc.line)
		waitOutput(t, out, tc.want)
	}
	waitStarts("n2", 3)
	if strings.Count(out.String(), "n1 | got SIGTERM") != 1 {
		t.Errorf("n1 got SIGTERM other than by its own stop:\n%s", out)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return after cancel; output:\n%s", out)
	}
	if got := strings.Count(out.String(), "| got SIGTERM"); got != 4 {
		t.Errorf("%d SIGTERMs, want 4 (restart n2, stop n1, and both at the end):\n%s", got, out)
	}
}
