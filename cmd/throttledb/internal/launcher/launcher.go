package launcher

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes a local cluster.
type Config struct {
	// Binary is the throttledb executable to run for each node. Default:
	// os.Executable(), the running binary.
	Binary string
	// Nodes is the number of nodes. Default 3.
	Nodes int
	// Host is the address every node listens on. Default 127.0.0.1.
	Host string
	// BasePort is node 1's RESP port; node i listens on BasePort+i-1. Zero
	// lets the system pick free ports (the launcher learns node 1's port
	// from its log before starting the others).
	BasePort int
	// RaftBasePort is node 1's Raft port; node i uses RaftBasePort+i-1.
	// Zero lets the system pick free ports.
	RaftBasePort int
	// DataDir is the cluster's directory; node i keeps its data in
	// DataDir/n<i>. Default "throttledb-cluster".
	DataDir string
	// RequirePass is the password every node requires. It reaches each
	// node in its environment (PasswordEnv), never on its command line,
	// which every user of the machine can read (ps).
	RequirePass string
	// ExtraArgs are appended to every node's command line.
	ExtraArgs []string
	// Output receives every child's output, one line at a time, each line
	// prefixed with "<id> | ". Default os.Stderr.
	Output io.Writer
	// StopTimeout bounds how long Run waits for children to exit after
	// SIGTERM before it kills them. Default 30 s.
	StopTimeout time.Duration
	// StartTimeout bounds how long Run waits for node 1 to report its
	// address when BasePort is 0. Default 30 s.
	StartTimeout time.Duration
	// OnStarted, if set, is called each time a node logs that it is
	// listening (once per start), with its ID, RESP address and Raft
	// address.
	OnStarted func(id, addr, raftAddr string)
	// Commands, if set, is read one line at a time while the cluster runs:
	// each line is a command for the launcher (restart 2, stop n3, nodes;
	// see Commands). Its answers go to Output. Nil: no commands.
	Commands io.Reader
}

func (c Config) withDefaults() (Config, error) {
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("find own executable: %w", err)
		}
		c.Binary = exe
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.DataDir == "" {
		c.DataDir = "throttledb-cluster"
	}
	if c.Output == nil {
		c.Output = os.Stderr
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	return c, nil
}

// Validate reports a configuration Run would refuse.
func (c Config) Validate() error {
	switch {
	case c.Nodes < 1:
		return fmt.Errorf("--nodes must be at least 1, got %d", c.Nodes)
	case c.BasePort < 0 || c.BasePort+c.Nodes-1 > 65535:
		return fmt.Errorf("--base-port %d leaves no room for %d nodes", c.BasePort, c.Nodes)
	case c.RaftBasePort < 0 || c.RaftBasePort+c.Nodes-1 > 65535:
		return fmt.Errorf("--raft-base-port %d leaves no room for %d nodes", c.RaftBasePort, c.Nodes)
	case c.BasePort != 0 && c.RaftBasePort != 0 &&
		c.BasePort < c.RaftBasePort+c.Nodes && c.RaftBasePort < c.BasePort+c.Nodes:
		return fmt.Errorf("RESP ports %d.. and Raft ports %d.. overlap", c.BasePort, c.RaftBasePort)
	}
	return nil
}

// Node is one node of a local cluster as the launcher starts it.
type Node struct {
	ID       string
	Addr     string // RESP address (port 0: chosen at start)
	RaftAddr string // Raft address (port 0: chosen at start)
	DataDir  string
	Join     []string // RESP addresses to join; empty for node 1
}

// PasswordEnv is the environment variable the throttledb binary reads the
// password to require from (as an alternative to --requirepass).
const PasswordEnv = "THROTTLEDB_PASSWORD"

// Args returns the node's command line (without the binary). It never
// holds the password: see Env.
func (n Node) Args(extra ...string) []string {
	args := []string{"--id", n.ID, "--addr", n.Addr, "--raft-addr", n.RaftAddr, "--data", n.DataDir}
	if len(n.Join) > 0 {
		args = append(args, "--join", joinList(n.Join))
	}
	return append(args, extra...)
}

// Env returns a node's environment: environ (the launcher's own) without
// any PasswordEnv it holds, plus PasswordEnv set to requirePass when that
// is not empty. Inheriting the launcher's variable unchanged would be
// wrong when it differs from the password the launcher resolved.
func Env(environ []string, requirePass string) []string {
	env := make([]string, 0, len(environ)+1)
	for _, kv := range environ {
		if !strings.HasPrefix(kv, PasswordEnv+"=") {
			env = append(env, kv)
		}
	}
	if requirePass != "" {
		env = append(env, PasswordEnv+"="+requirePass)
	}
	return env
}

// ShareCPUs returns environ with GOMAXPROCS set to each node's share of
// the machine's cpus, cpus/nodes and at least 1, unless environ already
// sets it. Every node is a Go process that would otherwise size its
// scheduler to the whole machine, and nodes sharing a few cores then spend
// a quarter of their CPU on schedulers looking for work (measured on 2
// cores with 3 nodes: 70-75 against 52-62 ms of leader CPU per thousand
// requests at redis-benchmark -P 1). A node on a machine of its own is
// started some other way and keeps Go's default.
func ShareCPUs(environ []string, cpus, nodes int) []string {
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return environ
		}
	}
	return append(environ, "GOMAXPROCS="+strconv.Itoa(max(1, cpus/max(1, nodes))))
}

func joinList(addrs []string) string {
	s := ""
	for i, a := range addrs {
		if i > 0 {
			s += ","
		}
		s += a
	}
	return s
}

// Plan returns the nodes cfg describes: n1 bootstraps, n2..nN join n1.
// With BasePort 0 the joiners' Join address is filled in by Run once n1
// reports its port.
func Plan(cfg Config) []Node {
	cfg, _ = cfg.withDefaults()
	port := func(base, i int) int {
		if base == 0 {
			return 0
		}
		return base + i
	}
	var nodes []Node
	for i := 0; i < cfg.Nodes; i++ {
		n := Node{
			ID:       fmt.Sprintf("n%d", i+1),
			Addr:     net.JoinHostPort(cfg.Host, strconv.Itoa(port(cfg.BasePort, i))),
			RaftAddr: net.JoinHostPort(cfg.Host, strconv.Itoa(port(cfg.RaftBasePort, i))),
			DataDir:  filepath.Join(cfg.DataDir, fmt.Sprintf("n%d", i+1)),
		}
		if i > 0 {
			n.Join = []string{nodes[0].Addr}
		}
		nodes = append(nodes, n)
	}
	return nodes
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

// child is one running node process.
type child struct {
	node     Node
	cmd      *exec.Cmd
	started  chan struct{} // closed when the node logs its address
	addr     string        // RESP address, set before started is closed
	raftAddr string        // Raft address, set before started is closed
	done     chan struct{} // closed when the process has exited and its output is drained
	err      error         // exit status, set before done is closed

	// Owned by Run's loop: the exit was asked for (stop, restart, kill),
	// and has already been reported.
	requested, reported bool
}

func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// supervisor is Run's state. Only Run's goroutine touches it.
type supervisor struct {
	cfg      Config
	out      io.Writer
	nodes    []Node
	children []*child // children[i] is node i's latest process; nil before its first start
	exited   chan *child
	quit     chan struct{} // closed when Run returns
}

// Run starts the cluster and supervises it until ctx ends, then sends every
// child SIGTERM and waits for all of them (killing those still running after
// StopTimeout). While it runs it reads commands from Config.Commands, one a
// line (see Commands). It returns an error if a node cannot be started, or
// if the last running node exited without being asked to.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s := &supervisor{cfg: cfg, out: &lockedWriter{w: cfg.Output}, nodes: Plan(cfg),
		exited: make(chan *child), quit: make(chan struct{})}
	defer func() {
		close(s.quit)
		stopAll(s.children, cfg.StopTimeout, s.out)
	}()

	for i, n := range s.nodes {
		if err := os.MkdirAll(n.DataDir, 0o755); err != nil {
			return err
		}
		if i > 0 && cfg.BasePort == 0 {
			// Learn n1's chosen port from its log before anyone joins it.
			first := s.children[0]
			select {
			case <-first.started:
			case <-first.done:
				return fmt.Errorf("%s exited before it started listening: %v", first.node.ID, first.err)
			case <-ctx.Done():
				return nil
			case <-time.After(cfg.StartTimeout):
				return fmt.Errorf("%s did not report its address within %v", first.node.ID, cfg.StartTimeout)
			}
			s.nodes[i].Join = []string{first.addr}
		}
		c, err := s.start(i)
		if err != nil {
			return err
		}
		s.children = append(s.children, c)
	}

	var commands <-chan string
	if cfg.Commands != nil {
		commands = readCommands(cfg.Commands, s.quit)
		fmt.Fprintf(s.out, "launcher | commands (type them here): %s; Ctrl-C stops every node\n", commandList)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-s.exited:
			s.report(c)
			if !c.requested && s.running() == 0 {
				return errors.New("every node exited")
			}
		case line, ok := <-commands:
			if !ok {
				commands = nil // end of input: keep running until ctx ends
				continue
			}
			s.command(ctx, line)
		}
	}
}

func (s *supervisor) running() int {
	n := 0
	for _, c := range s.children {
		if c != nil && c.running() {
			n++
		}
	}
	return n
}

// start starts node i and logs its pid and command line.
func (s *supervisor) start(i int) (*child, error) {
	c, err := startChild(s.nodes[i], s.cfg, s.out, s.exited, s.quit)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(s.out, "launcher | started %s (pid %d): %s %v\n", c.node.ID, c.cmd.Process.Pid, s.cfg.Binary, c.cmd.Args[1:])
	return c, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// startChild starts one node, copying its stdout and stderr to out with the
// node's ID prefixed, and reports its exit on exited (unless quit is closed
// first).
func startChild(n Node, cfg Config, out io.Writer, exited chan<- *child, quit <-chan struct{}) (*child, error) {
	cmd := exec.Command(cfg.Binary, n.Args(cfg.ExtraArgs...)...)
	cmd.Env = ShareCPUs(Env(os.Environ(), cfg.RequirePass), runtime.NumCPU(), cfg.Nodes)
	setProcAttr(cmd)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", n.ID, err)
	}
	pw.Close() // the child holds its own copy
	c := &child{node: n, cmd: cmd, started: make(chan struct{}), done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		c.copyOutput(pr, out, cfg.OnStarted)
	}()
	go func() {
		c.err = cmd.Wait()
		<-copied // the pipe reaches EOF once the child (and any child of it) exits
		pr.Close()
		close(c.done)
		select {
		case exited <- c:
		case <-quit:
		}
	}()
	return c, nil
}

// copyOutput copies the child's output line by line, prefixed with its ID,
// and notices the line that reports its address.
func (c *child) copyOutput(r io.Reader, out io.Writer, onStarted func(id, addr, raftAddr string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := c.node.ID + " | "
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintf(out, "%s%s\n", prefix, line)
		if c.addr == "" {
			if _, addr, raftAddr, ok := ParseStarted(line); ok {
				c.addr, c.raftAddr = addr, raftAddr
				close(c.started)
				if onStarted != nil {
					onStarted(c.node.ID, addr, raftAddr)
				}
			}
		}
	}
	// Drain whatever is left (a line too long for the scanner).
	io.Copy(io.Discard, r)
}

// stopAll sends SIGTERM to every running child, by pid, and waits for them;
// a child still running after timeout is killed.
func stopAll(children []*child, timeout time.Duration, out io.Writer) {
	for _, c := range children {
		select {
		case <-c.done:
		default:
			fmt.Fprintf(out, "launcher | stopping %s (SIGTERM to pid %d)\n", c.node.ID, c.cmd.Process.Pid)
			c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(timeout)
	for _, c := range children {
		select {
		case <-c.done:
		case <-deadline:
			fmt.Fprintf(out, "launcher | %s still running after %v; killing pid %d\n", c.node.ID, timeout, c.cmd.Process.Pid)
			c.cmd.Process.Kill()
			<-c.done
		}
	}
}

// lockedWriter serializes writes so that lines of different children never
// interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
