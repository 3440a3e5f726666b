package launcher

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Commands is the help text of the commands Config.Commands may hold, one a
// line. A command touches only the node it names: the others keep running
// (a majority of them keeps the cluster granting), and so does the
// launcher, until Ctrl-C or SIGTERM.
const Commands = `restart <node>  stop the node (SIGTERM, by pid) and start it again on the same data and addresses
stop <node>     stop the node (SIGTERM, by pid) and leave it stopped
start <node>    start a stopped node again
kill <node>     SIGKILL the node (a crash)
nodes           list the nodes, their pids and addresses
help            print this list
<node> is a node's ID (n2) or number (2); no other node is touched`

// commandList names the commands, for the line printed at start.
const commandList = "restart <n>, stop <n>, start <n>, kill <n>, nodes, help"

// readCommands sends each non-empty line of r, trimmed, on the returned
// channel, which is closed at the end of r. It stops early when quit is
// closed (though a read already blocked returns only with r).
func readCommands(r io.Reader, quit <-chan struct{}) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			select {
			case ch <- line:
			case <-quit:
				return
			}
		}
	}()
	return ch
}

// command runs one command line, writing its outcome to the output.
func (s *supervisor) command(ctx context.Context, line string) {
	f := strings.Fields(line)
	verb := strings.ToLower(f[0])
	say := func(format string, args ...any) {
		fmt.Fprintf(s.out, "launcher | "+format+"\n", args...)
	}
	switch verb {
	case "help":
		for _, l := range strings.Split(Commands, "\n") {
			say("  %s", l)
		}
		return
	case "nodes":
		if len(f) != 1 {
			say("usage: nodes")
			return
		}
		for _, c := range s.children {
			state := "running"
			if !c.running() {
				state = "exited (" + exitText(c.err) + ")"
			}
			addr, raftAddr := c.addresses()
			say("%s pid %d %s, RESP %s, Raft %s, data %s", c.node.ID, c.cmd.Process.Pid, state, addr, raftAddr, c.node.DataDir)
		}
		return
	case "restart", "stop", "start", "kill":
	default:
		say("unknown command %q; commands: %s", line, commandList)
		return
	}
	if len(f) != 2 {
		say("usage: %s <node> (an ID such as n2, or its number)", verb)
		return
	}
	i, ok := s.nodeIndex(f[1])
	if !ok {
		say("no node %q: nodes are n1..n%d", f[1], len(s.nodes))
		return
	}
	c := s.children[i]
	switch verb {
	case "stop", "restart":
		if c.running() {
			s.stop(ctx, c)
		} else if verb == "stop" {
			say("%s is not running", c.node.ID)
			return
		}
		if verb == "stop" || ctx.Err() != nil {
			return
		}
	case "kill":
		if !c.running() {
			say("%s is not running", c.node.ID)
			return
		}
		c.requested = true
		say("killing %s (SIGKILL to pid %d)", c.node.ID, c.cmd.Process.Pid)
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
		s.report(c)
		return
	case "start":
		if c.running() {
			say("%s is already running (pid %d)", c.node.ID, c.cmd.Process.Pid)
			return
		}
	}
	// Start again where it was: with system-chosen ports, the addresses it
	// reported (its peers know it by them), not port 0.
	if addr, raftAddr := c.addresses(); addr != "" {
		s.nodes[i].Addr, s.nodes[i].RaftAddr = addr, raftAddr
	}
	nc, err := s.start(i)
	if err != nil {
		say("%s", err)
		return
	}
	s.children[i] = nc
}

// addresses returns the addresses the node reported, or empty strings if it
// has not reported them.
func (c *child) addresses() (addr, raftAddr string) {
	select {
	case <-c.started:
		return c.addr, c.raftAddr
	default:
		return "", ""
	}
}

// nodeIndex resolves "n2" or "2" to an index in s.nodes.
func (s *supervisor) nodeIndex(name string) (int, bool) {
	for i, n := range s.nodes {
		if strings.EqualFold(name, n.ID) {
			return i, true
		}
	}
	if k, err := strconv.Atoi(name); err == nil && k >= 1 && k <= len(s.nodes) {
		return k - 1, true
	}
	return 0, false
}

// stop sends the child SIGTERM, by pid, and waits for it to exit: up to
// StopTimeout, then it kills it. It gives up waiting when ctx ends (Run's
// own stop then takes over).
func (s *supervisor) stop(ctx context.Context, c *child) {
	c.requested = true
	fmt.Fprintf(s.out, "launcher | stopping %s (SIGTERM to pid %d)\n", c.node.ID, c.cmd.Process.Pid)
	c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-ctx.Done():
		return
	case <-t.C:
		fmt.Fprintf(s.out, "launcher | %s still running after %v; killing pid %d\n", c.node.ID, s.cfg.StopTimeout, c.cmd.Process.Pid)
		c.cmd.Process.Kill()
		<-c.done
	}
	s.report(c)
}

// report writes how the child exited, once.
func (s *supervisor) report(c *child) {
	if !c.reported {
		c.reported = true
		fmt.Fprintf(s.out, "launcher | %s (pid %d) exited: %s\n", c.node.ID, c.cmd.Process.Pid, exitText(c.err))
	}
}
