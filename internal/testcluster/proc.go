package testcluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The harness starts nodes itself rather than through `throttledb cluster`
// (whose launcher is internal to the command): it needs a Proc per node to
// kill, restart and read. These two helpers are all it shares with the
// launcher's contract with a node, and tests of both run against the real
// binary.

// PasswordEnv is the environment variable the throttledb binary reads the
// password to require from. Procs get their password there, as the
// launcher gives it, never on the command line.
const PasswordEnv = "THROTTLEDB_PASSWORD"

// procEnv returns environ without any PasswordEnv it holds, plus
// PasswordEnv=pass when pass is not empty.
func procEnv(environ []string, pass string) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, PasswordEnv+"=") {
			env = append(env, kv)
		}
	}
	if pass != "" {
		env = append(env, PasswordEnv+"="+pass)
	}
	return env
}

// startedLine matches the line a node logs once it listens.
var startedLine = regexp.MustCompile(`msg="throttledb node started" id=(\S+) addr=(\S+) raft=(\S+)`)

// ParseStarted extracts the ID, RESP address and Raft address from a node's
// "throttledb node started" log line.
func ParseStarted(line string) (id, addr, raftAddr string, ok bool) {
	m := startedLine.FindStringSubmatch(line)
	if m == nil {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}

// BuildBinary builds cmd/throttledb into dir and returns the binary's path.
// Call it once, from TestMain.
func BuildBinary(dir string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the module source")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "throttledb")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/throttledb")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/throttledb: %v\n%s", err, out)
	}
	return bin, nil
}

// ProcOptions configures a node run as a real throttledb process.
type ProcOptions struct {
	// ID is the node ID (--id); default "n1".
	ID string
	// Join lists RESP addresses to join (--join).
	Join []string
	// DataDir is the data directory; default a new t.TempDir().
	DataDir string
	// RequirePass is the password, given in the process's environment
	// (THROTTLEDB_PASSWORD) as the launcher gives it, not as --requirepass.
	RequirePass string
	// LeaderWait sets --leader-wait; zero keeps the binary's default (2 s).
	LeaderWait time.Duration
	// Args are extra command-line arguments.
	Args []string
	// OnStart, if set, is called with the node's RESP and Raft addresses
	// each time it starts listening, before StartProc or Restart waits for
	// a join (a fault test points its proxies at them).
	OnStart func(addr, raftAddr string)
}

// Proc is a throttledb node running as a child process, listening on
// system-chosen loopback ports. It is killed at cleanup if still running.
type Proc struct {
	t   testing.TB
	bin string
	o   ProcOptions

	mu       sync.Mutex
	addr     string // RESP and Raft addresses of the latest start; read
	raftAddr string // while another goroutine restarts the node
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the current process has been reaped
	waitErr  error
	logs     []string // every line the node logged, across restarts
}

// StartProc starts a node process and waits until it listens (and, when
// joining, until it has been admitted).
func StartProc(t testing.TB, bin string, o ProcOptions) *Proc {
	t.Helper()
	if o.ID == "" {
		o.ID = "n1"
	}
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	p := &Proc{t: t, bin: bin, o: o}
	p.start("127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() || os.Getenv("THROTTLEDB_TEST_LOG") != "" {
			p.dumpLogs()
		}
	})
	return p
}

func (p *Proc) args(addr, raftAddr string) []string {
	args := []string{"--id", p.o.ID, "--addr", addr, "--raft-addr", raftAddr, "--data", p.o.DataDir, "--log-level", "debug"}
	if len(p.o.Join) > 0 {
		args = append(args, "--join", strings.Join(p.o.Join, ","))
	}
	if p.o.LeaderWait > 0 {
		args = append(args, "--leader-wait", p.o.LeaderWait.String())
	}
	return append(args, p.o.Args...)
}

func (p *Proc) start(addr, raftAddr string) {
	p.t.Helper()
	cmd := exec.Command(p.bin, p.args(addr, raftAddr)...)
	cmd.Env = procEnv(os.Environ(), p.o.RequirePass)
	pr, pw, err := os.Pipe()
	if err != nil {
		p.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		p.t.Fatalf("start %s: %v", p.o.ID, err)
	}
	pw.Close()
	exited := make(chan struct{})
	started := make(chan [2]string, 1)
	copied := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.waitErr = cmd, exited, nil
	p.mu.Unlock()
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs = append(p.logs, line)
			p.mu.Unlock()
			if os.Getenv("THROTTLEDB_TEST_LOG") != "" {
				fmt.Fprintf(os.Stderr, "%s | %s\n", p.o.ID, line)
			}
			if _, a, r, ok := ParseStarted(line); ok {
				select {
				case started <- [2]string{a, r}:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		<-copied
		pr.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	select {
	case a := <-started:
		p.mu.Lock()
		p.addr, p.raftAddr = a[0], a[1]
		p.mu.Unlock()
		if p.o.OnStart != nil {
			p.o.OnStart(a[0], a[1])
		}
	case <-exited:
		p.t.Fatalf("%s exited before listening: %v\n%s", p.o.ID, p.ExitErr(), p.tail(40))
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not start listening within 30s\n%s", p.o.ID, p.tail(40))
	}
	if len(p.o.Join) > 0 {
		// server.Start returns (and the process is useful) only after the
		// join; the "node started" line comes before it. Wait for either
		// the join or existing state.
		WaitFor(p.t, 30*time.Second, p.o.ID+" to be a member", func() bool {
			if !p.Running() {
				p.t.Fatalf("%s exited while joining: %v\n%s", p.o.ID, p.ExitErr(), p.tail(40))
			}
			return p.Logged(`msg="joined cluster"`) || p.Logged("existing_state=true")
		})
	}
}

// ID returns the node's ID.
func (p *Proc) ID() string { return p.o.ID }

// Addr returns the node's RESP address.
func (p *Proc) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// RaftAddr returns the node's Raft address.
func (p *Proc) RaftAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raftAddr
}

// DataDir returns the node's data directory.
func (p *Proc) DataDir() string { return p.o.DataDir }

// Pid returns the current process's pid.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Running reports whether the process is alive (not yet reaped).
func (p *Proc) Running() bool {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// ExitErr returns how the last process exited (nil: status 0).
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Kill sends SIGKILL to the process (by pid) and waits until it is reaped:
// a crash. It is a no-op on a stopped node.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	p.mu.Lock()
	proc, exited := p.cmd.Process, p.exited
	p.mu.Unlock()
	proc.Signal(syscall.SIGKILL)
	<-exited
}

// ErrNotStopped is returned by Pause when the process's threads did not
// all stop in time.
var ErrNotStopped = errors.New("testcluster: process did not stop")

// Pause sends SIGSTOP to the process and returns once every one of its
// threads has stopped, with how long that took (at most timeout, or
// ErrNotStopped). kill(2) returning does not mean the process is stopped:
// the kernel hands the signal to one thread, which begins the group stop
// only when it next runs its signal path (after an uninterruptible syscall
// such as an fsync, or once a loaded scheduler runs it), and until then
// the other threads keep serving and replicating, for up to hundreds of
// milliseconds on a busy machine. A test that asserts what
// a stopped node cannot do must start its clock only once Pause returns.
// Resume with SIGCONT (syscall.Kill(p.Pid(), syscall.SIGCONT)).
func (p *Proc) Pause(timeout time.Duration) (time.Duration, error) {
	took, err := pause(p.Pid(), timeout)
	if err != nil {
		return took, fmt.Errorf("%s: %w", p.o.ID, err)
	}
	return took, nil
}

// pause is Pause by pid.
func pause(pid int, timeout time.Duration) (time.Duration, error) {
	sent := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return 0, fmt.Errorf("%w: SIGSTOP: %w", ErrNotStopped, err)
	}
	// Polled finely: callers time their faults from the return.
	for deadline := sent.Add(timeout); ; time.Sleep(time.Millisecond) {
		all, err := allThreadsStopped(pid)
		if all {
			return time.Since(sent), nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("a thread still running after %v", timeout)
			}
			return time.Since(sent), fmt.Errorf("%w: %w", ErrNotStopped, err)
		}
	}
}

// allThreadsStopped reports whether every thread of process pid is in the
// stopped state ('T' in /proc/pid/task/*/stat).
func allThreadsStopped(pid int) (bool, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false, err
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain ") ".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return false, fmt.Errorf("%s/%s/stat: %q", dir, task.Name(), b)
		}
		if b[i+2] != 'T' {
			return false, nil
		}
	}
	return len(tasks) > 0, nil
}

// Term sends SIGTERM to the process (by pid) and waits for it to exit, for
// up to 30 s, after which it kills it and fails the test. It returns the
// process's exit error (nil for a clean exit).
func (p *Proc) Term() error {
	p.t.Helper()
	if !p.Running() {
		return p.ExitErr()
	}
	p.mu.Lock()
	proc, exited := p.cmd.Process, p.exited
	p.mu.Unlock()
	proc.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		p.Kill()
		p.t.Fatalf("%s did not exit within 30s of SIGTERM", p.o.ID)
	}
	return p.ExitErr()
}

// Restart starts a stopped node again on the same data directory, ID,
// addresses and command line (including --join, which a node with existing
// state must ignore). A running node is killed first.
func (p *Proc) Restart() {
	p.t.Helper()
	p.Kill()
	p.start(p.Addr(), p.RaftAddr())
}

// RestartNewAddrs starts a stopped node again on the same data directory,
// ID and command line but on new system-chosen ports: it must re-register
// its new addresses with the cluster. A running node is killed first.
func (p *Proc) RestartNewAddrs() {
	p.t.Helper()
	p.Kill()
	p.start("127.0.0.1:0", "127.0.0.1:0")
}

// Client returns a go-redis client for the node with retries off
// (MaxRetries -1), so callers see every raw outcome; it is closed at cleanup.
func (p *Proc) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: p.Addr(), Password: p.o.RequirePass, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 5 * time.Second,
	})
	p.t.Cleanup(func() { c.Close() })
	return c
}

// Logged reports whether any line the node logged (in any run) contains s.
func (p *Proc) Logged(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Logs returns a copy of every line the node has logged.
func (p *Proc) Logs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logs...)
}

func (p *Proc) tail(n int) string {
	logs := p.Logs()
	if len(logs) > n {
		logs = logs[len(logs)-n:]
	}
	return strings.Join(logs, "\n")
}

func (p *Proc) dumpLogs() {
	p.t.Logf("---- log of %s (last 200 lines) ----\n%s", p.o.ID, p.tail(200))
}

// Info returns the node's INFO section as a map.
func (p *Proc) Info(ctx context.Context, section string) (map[string]string, error) {
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), Password: p.o.RequirePass, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	s, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	return ParseInfo(s), nil
}

// ParseInfo parses an INFO reply into key/value pairs.
func ParseInfo(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// AppliedIndex returns the node's raft_applied_index from INFO raft.
func (p *Proc) AppliedIndex(ctx context.Context) (uint64, error) {
	info, err := p.Info(ctx, "raft")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(info["raft_applied_index"], 10, 64)
}

// String describes the node.
func (p *Proc) String() string { return fmt.Sprintf("%s@%s", p.o.ID, p.Addr()) }

// ProcCluster is a set of node processes forming one cluster.
type ProcCluster struct {
	t     testing.TB
	bin   string
	Procs []*Proc
}

// StartProcCluster starts n node processes: n1 bootstraps and n2..nN join
// it with --join. It returns once every node knows the same ready leader.
func StartProcCluster(t testing.TB, bin string, n int, o ProcOptions) *ProcCluster {
	t.Helper()
	c := &ProcCluster{t: t, bin: bin}
	for i := 1; i <= n; i++ {
		po := o
		po.ID = fmt.Sprintf("n%d", i)
		po.DataDir = ""
		if i > 1 {
			po.Join = []string{c.Procs[0].Addr()}
		}
		c.Procs = append(c.Procs, StartProc(t, bin, po))
	}
	c.WaitForLeader(20 * time.Second)
	return c
}

// Add starts one more node that joins the cluster through the running
// nodes.
func (c *ProcCluster) Add(id string, o ProcOptions) *Proc {
	c.t.Helper()
	o.ID = id
	o.Join = c.Addrs()
	p := StartProc(c.t, c.bin, o)
	c.Procs = append(c.Procs, p)
	return p
}

// Running returns the nodes whose process is alive.
func (c *ProcCluster) Running() []*Proc {
	var out []*Proc
	for _, p := range c.Procs {
		if p.Running() {
			out = append(out, p)
		}
	}
	return out
}

// Addrs returns the RESP addresses of the running nodes.
func (c *ProcCluster) Addrs() []string {
	var out []string
	for _, p := range c.Running() {
		out = append(out, p.Addr())
	}
	return out
}

// Proc returns the node with the given ID, or nil.
func (c *ProcCluster) Proc(id string) *Proc {
	for _, p := range c.Procs {
		if p.ID() == id {
			return p
		}
	}
	return nil
}

// Leader returns the running node that reports itself the ready leader in
// INFO raft, provided every other running node names it as leader too; nil
// otherwise.
func (c *ProcCluster) Leader() *Proc {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var leader *Proc
	ids := map[string]bool{}
	for _, p := range c.Running() {
		info, err := p.Info(ctx, "raft")
		if err != nil {
			return nil
		}
		ids[info["raft_leader_id"]] = true
		if info["raft_state"] == "leader" && info["raft_ready"] == "true" {
			leader = p
		}
	}
	if leader == nil || len(ids) != 1 || !ids[leader.ID()] {
		return nil
	}
	return leader
}

// WaitForLeader waits until Leader returns a node and returns it.
func (c *ProcCluster) WaitForLeader(timeout time.Duration) *Proc {
	c.t.Helper()
	var l *Proc
	WaitFor(c.t, timeout, "a ready leader every running node agrees on", func() bool {
		l = c.Leader()
		return l != nil
	})
	return l
}

// Followers returns the running nodes other than the leader (all running
// nodes when there is none).
func (c *ProcCluster) Followers() []*Proc {
	l := c.Leader()
	var out []*Proc
	for _, p := range c.Running() {
		if p != l {
			out = append(out, p)
		}
	}
	return out
}
