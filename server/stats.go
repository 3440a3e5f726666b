package server

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// cmdStat counts one command's calls for INFO commandstats. usec is wall
// time from dispatch until the reply is written, so for writes it includes
// waiting for the commit: what a client sees, not CPU time as in Redis.
type cmdStat struct {
	calls, usec, rejected, failed atomic.Int64
}

// serverStats holds INFO's commandstats and errorstats.
type serverStats struct {
	cmds    map[string]*cmdStat // by commandName; built once, then read-only
	parents map[string]bool     // commands with subcommands; read-only

	errMu    sync.Mutex
	errs     map[string]int64 // error replies by code (the first word)
	errTotal atomic.Int64
}

// maxErrorCodes caps the distinct error codes errorstats tracks, as Redis
// does (128), so that error texts from elsewhere cannot grow the map.
const maxErrorCodes = 128

func newServerStats() *serverStats {
	st := &serverStats{cmds: map[string]*cmdStat{}, parents: map[string]bool{}, errs: map[string]int64{}}
	for name := range commands {
		st.cmds[name] = &cmdStat{}
		st.parents[name] = len(commandDocs[name].subs) > 0
		for _, sub := range commandDocs[name].subs {
			st.cmds[sub.name] = &cmdStat{}
		}
	}
	return st
}

// cmd returns the counters of a command named as commandName names it, or
// nil for an unknown one.
func (st *serverStats) cmd(name string) *cmdStat { return st.cmds[name] }

// countError counts an error reply by its code.
func (st *serverStats) countError(msg string) {
	st.errTotal.Add(1)
	code, _, _ := strings.Cut(msg, " ")
	st.errMu.Lock()
	if _, ok := st.errs[code]; ok || len(st.errs) < maxErrorCodes {
		st.errs[code]++
	}
	st.errMu.Unlock()
}

// WriteError writes an error reply and counts it for INFO errorstats and,
// through errs, for the failed calls of the command being served.
func (c *clientConn) WriteError(msg string) {
	c.errs++
	if c.stats != nil {
		c.stats.countError(msg)
	}
	c.Writer.WriteError(msg)
}

// noteRawReply counts a reply relayed byte for byte (from the leader) if
// it is an error.
func (c *clientConn) noteRawReply(raw []byte) {
	if len(raw) > 1 && raw[0] == '-' {
		c.errs++
		if c.stats != nil {
			msg, _, _ := strings.Cut(string(raw[1:]), "\r")
			c.stats.countError(msg)
		}
	}
}

// localStat is a connection's counts for one command not yet added to the
// server's: a connection adds them once per batch of commands (flushStats),
// so that clients pipelining one command do not all contend for its
// counters on every call.
type localStat struct {
	cs                  *cmdStat
	calls, usec, failed int64
}

// record adds one call of the command named name that started at start:
// failed if it wrote an error reply (errsBefore is the connection's count
// of error replies before it).
func (st *serverStats) record(name string, start, end time.Time, c *clientConn, errsBefore int) {
	cs := st.cmds[name]
	if cs == nil {
		return
	}
	var ls *localStat
	for i := range c.local {
		if c.local[i].cs == cs {
			ls = &c.local[i]
			break
		}
	}
	if ls == nil {
		c.local = append(c.local, localStat{cs: cs})
		ls = &c.local[len(c.local)-1]
	}
	ls.calls++
	ls.usec += end.Sub(start).Microseconds()
	if c.errs != errsBefore {
		ls.failed++
	}
}

// flushStats adds the connection's pending counts to the server's.
func (c *clientConn) flushStats() {
	for _, ls := range c.local {
		ls.cs.calls.Add(ls.calls)
		ls.cs.usec.Add(ls.usec)
		if ls.failed > 0 {
			ls.cs.failed.Add(ls.failed)
		}
	}
	c.local = c.local[:0]
}

// statName names the command of args for commandstats, given its table
// row: "parent|sub" for a known subcommand, else the row's name. Only
// commands with subcommands pay for building a name.
func (st *serverStats) statName(cmd *command, args [][]byte) string {
	if !st.parents[cmd.name] || len(args) < 2 {
		return cmd.name
	}
	return commandName(args)
}

// reject counts a call of name refused before it ran (arity, NOAUTH,
// refused in MULTI).
func (st *serverStats) reject(name string) {
	if cs := st.cmds[name]; cs != nil {
		cs.rejected.Add(1)
	}
}

// commandStats returns INFO commandstats' lines, for commands called or
// rejected at least once, by name.
func (st *serverStats) commandStats() []string {
	var kv []string
	names := make([]string, 0, len(st.cmds))
	for name := range st.cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		cs := st.cmds[name]
		calls, usec := cs.calls.Load(), cs.usec.Load()
		rejected, failed := cs.rejected.Load(), cs.failed.Load()
		if calls == 0 && rejected == 0 {
			continue
		}
		perCall := 0.0
		if calls > 0 {
			perCall = float64(usec) / float64(calls)
		}
		kv = append(kv, "cmdstat_"+name, fmt.Sprintf("calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d",
			calls, usec, perCall, rejected, failed))
	}
	return kv
}

// errorStats returns INFO errorstats' lines, by error code.
func (st *serverStats) errorStats() []string {
	st.errMu.Lock()
	codes := make([]string, 0, len(st.errs))
	for code := range st.errs {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	kv := make([]string, 0, 2*len(codes))
	for _, code := range codes {
		kv = append(kv, "errorstat_"+code, "count="+strconv.FormatInt(st.errs[code], 10))
	}
	st.errMu.Unlock()
	return kv
}

// bytesToHuman formats n as Redis's INFO *_human fields do.
func bytesToHuman(n int64) string {
	f := float64(n)
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + "B"
	case n < 1<<20:
		return fmt.Sprintf("%.2fK", f/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.2fM", f/(1<<20))
	case n < 1<<40:
		return fmt.Sprintf("%.2fG", f/(1<<30))
	case n < 1<<50:
		return fmt.Sprintf("%.2fT", f/(1<<40))
	default:
		return fmt.Sprintf("%.2fP", f/(1<<50))
	}
}

// memoryUsage returns the bytes of live heap objects (Redis's used_memory:
// what the allocator has handed out) and the process's resident set size.
func memoryUsage() (used, rss int64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	used = int64(m.Alloc)
	rss = int64(m.Sys - m.HeapReleased) // outside Linux: what Go holds from the OS
	// Linux: resident pages, the second field of /proc/self/statm.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			if pages, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				rss = pages * int64(os.Getpagesize())
			}
		}
	}
	return used, rss
}
