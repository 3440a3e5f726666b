package server

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/throttledb/throttledb/internal/resp"
)

// This file keeps the registry of client connections that CLIENT LIST,
// CLIENT INFO and CLIENT KILL read, and what each connection publishes
// about itself for them.
//
// Why a published copy: a connection's session is owned by the goroutine
// serving it and read without locks; CLIENT LIST runs on another
// connection's goroutine. So each connection copies what CLIENT LIST shows
// into clientConn.pub, under clientConn.pubMu, as it starts each command and
// once its batch of commands is served.

// clientState is what a connection last published about itself.
type clientState struct {
	name, libName, libVer string
	user                  string
	cmd                   cmdWords  // the last command's name and first argument
	last                  time.Time // the last interaction
	resp                  int       // 2 or 3
	multi                 int       // commands queued in MULTI, -1 outside one
	qbuf, qbufFree        int       // request bytes buffered, and room left in the buffer
	argvMem               int       // bytes of the command being served
	obl                   int       // reply bytes buffered, not yet written
}

// cmdWords holds the start of a command's name and first argument, copied
// into fixed arrays: enough for commandName (no command or subcommand name
// is longer), with no allocation, and without keeping the request buffer
// (which may hold a huge argument) alive.
type cmdWords struct {
	name, sub       [24]byte
	nameLen, subLen uint8 // nameLen 0: no command yet
}

func (w *cmdWords) set(args [][]byte) {
	w.nameLen = uint8(copy(w.name[:], args[0]))
	w.subLen = 0
	if len(args) > 1 {
		w.subLen = uint8(copy(w.sub[:], args[1]))
	}
}

// String names the command as commandName does, "NULL" before any.
func (w *cmdWords) String() string {
	if w.nameLen == 0 {
		return "NULL"
	}
	args := [][]byte{w.name[:w.nameLen]}
	if w.subLen > 0 {
		args = append(args, w.sub[:w.subLen])
	}
	return commandName(args)
}

// registerClient records c for CLIENT LIST and KILL, with what it can know
// at accept: its addresses, file descriptor and start time.
func (s *Server) registerClient(c *clientConn) {
	c.created = time.Now()
	c.fd = connFD(c.nc)
	if la := c.nc.LocalAddr(); la != nil {
		c.laddr = la.String()
	}
	c.pub = clientState{last: c.created, resp: 2, multi: -1, user: "default"}
	s.clientsMu.Lock()
	s.clientsByID[c.sess.id] = c
	s.clientsMu.Unlock()
}

func (s *Server) unregisterClient(c *clientConn) {
	s.clientsMu.Lock()
	delete(s.clientsByID, c.sess.id)
	s.clientsMu.Unlock()
}

// connFD returns the file descriptor of a TCP connection (under TLS, of
// the connection beneath), or -1.
func connFD(nc net.Conn) int {
	type netConner interface{ NetConn() net.Conn }
	if t, ok := nc.(netConner); ok {
		nc = t.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// publish copies the connection's state for CLIENT LIST: args is the
// command about to be served, or nil once the batch is served and its
// replies are about to be written (then obl, the replies buffered, is
// published as 0, what it is once they are written), rd the connection's
// request reader. Before each command only the command and its size are
// published, cheaply; the rest once per batch.
func (c *clientConn) publish(args [][]byte, rd *resp.CommandReader) {
	if args != nil {
		argv := 0
		for _, a := range args {
			argv += len(a)
		}
		obl := len(c.Buffer())
		c.pubMu.Lock()
		c.pub.cmd.set(args)
		c.pub.argvMem, c.pub.obl = argv, obl
		c.pubMu.Unlock()
		return
	}
	st := clientState{
		name:    c.sess.name,
		libName: c.sess.libName,
		libVer:  c.sess.libVer,
		user:    "default",
		resp:    2,
		multi:   -1,
		last:    time.Now(),
	}
	if args != nil {
		st.obl = len(c.Buffer())
	}
	if c.sess.node {
		st.user = NodeUser
	}
	if c.sess.resp3 {
		st.resp = 3
	}
	if c.sess.tx != nil {
		st.multi = len(c.sess.tx.queued)
	}
	if rd != nil {
		st.qbuf = rd.Buffered()
		st.qbufFree = rd.Size() - st.qbuf
	}
	c.pubMu.Lock()
	st.cmd = c.pub.cmd
	c.pub = st
	c.pubMu.Unlock()
}

// commandName names a command as Redis's CLIENT LIST and INFO
// commandstats do: lower case, "parent|sub" for a known subcommand, "NULL"
// for an unknown command.
func commandName(args [][]byte) string {
	name := strings.ToLower(string(args[0]))
	if commands[name] == nil {
		return "NULL"
	}
	if len(args) > 1 && len(commandDocs[name].subs) > 0 {
		full := name + "|" + strings.ToLower(string(args[1]))
		if findSubcommand(full) != nil {
			return full
		}
	}
	return name
}

// clientLine formats c as one line of CLIENT LIST or the reply of CLIENT
// INFO, with Redis 7.2's fields in Redis's order. Fields for what
// throttledb does not have are Redis's values for a client without it: db
// is always 0, nobody subscribes (sub, psub, ssub 0), redirection is off
// (-1), and a reply is one buffer (oll and omem 0).
func (c *clientConn) clientLine(now time.Time) string {
	c.pubMu.Lock()
	st := c.pub
	c.pubMu.Unlock()
	flags := "N"
	if st.multi >= 0 {
		flags = "x"
	}
	var b strings.Builder
	kv := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v)
	}
	n := func(k string, v int64) { kv(k, strconv.FormatInt(v, 10)) }
	n("id", c.sess.id) // immutable after accept
	kv("addr", c.addr)
	kv("laddr", c.laddr)
	n("fd", int64(c.fd))
	kv("name", st.name)
	n("age", int64(now.Sub(c.created)/time.Second))
	n("idle", int64(now.Sub(st.last)/time.Second))
	kv("flags", flags)
	n("db", 0)
	n("sub", 0)
	n("psub", 0)
	n("ssub", 0)
	n("multi", int64(st.multi))
	n("qbuf", int64(st.qbuf))
	n("qbuf-free", int64(st.qbufFree))
	n("argv-mem", int64(st.argvMem))
	n("multi-mem", 0)
	n("obl", int64(st.obl))
	n("oll", 0)
	n("omem", 0)
	n("tot-mem", int64(st.qbuf+st.qbufFree+st.argvMem+st.obl))
	kv("events", "r")
	kv("cmd", st.cmd.String())
	kv("user", st.user)
	n("redir", -1)
	n("resp", int64(st.resp))
	kv("lib-name", st.libName)
	kv("lib-ver", st.libVer)
	return b.String()
}

// clientList returns the registered connections, by ID.
func (s *Server) clientList() []*clientConn {
	s.clientsMu.Lock()
	out := make([]*clientConn, 0, len(s.clientsByID))
	for _, c := range s.clientsByID {
		out = append(out, c)
	}
	s.clientsMu.Unlock()
	sortClients(out)
	return out
}

func sortClients(cs []*clientConn) {
	for i := 1; i < len(cs); i++ { // insertion sort: lists are short and mostly sorted
		for j := i; j > 0 && cs[j].sess.id < cs[j-1].sess.id; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

// kill closes another connection at once: its goroutine's next read fails
// and it ends as if the client had hung up. The calling connection is
// closed instead once its replies so far are written.
func (c *clientConn) kill(self *clientConn) {
	if c == self {
		c.Close()
		return
	}
	c.nc.Close()
}

// cmdClientList serves CLIENT LIST [TYPE type] [ID id [id ...]].
func cmdClientList(s *Server, c *call) (any, error) {
	var ids map[int64]bool
	typeOK := true
	for args := c.args[2:]; len(args) > 0; {
		switch opt := strings.ToLower(string(args[0])); {
		case opt == "type" && len(args) >= 2:
			switch t := strings.ToLower(string(args[1])); t {
			case "normal":
			case "master", "replica", "slave", "pubsub":
				typeOK = false // clients of these kinds never exist here
			default:
				return nil, redisError("ERR Unknown client type '" + clip(args[1]) + "'")
			}
			args = args[2:]
		case opt == "id" && len(args) >= 2:
			ids = map[int64]bool{}
			args = args[1:]
			for len(args) > 0 {
				id, isInt := parseInt(args[0])
				if !isInt || id <= 0 {
					return nil, redisError("ERR Invalid client ID")
				}
				ids[id] = true
				args = args[1:]
			}
		default:
			return nil, errSyntax
		}
	}
	var b strings.Builder
	now := time.Now()
	if typeOK {
		for _, cc := range s.clientList() {
			if ids != nil && !ids[cc.sess.id] {
				continue
			}
			b.WriteString(cc.clientLine(now))
			b.WriteByte('\n')
		}
	}
	return b.String(), nil
}

// cmdClientKill serves CLIENT KILL ip:port (the old form: OK, or an error
// when no client has that address) and CLIENT KILL <filter> <value> ...
// with the filters ID, ADDR, LADDR, USER and SKIPME (the new form: the
// number of clients killed).
func cmdClientKill(s *Server, c *call) (any, error) {
	if len(c.args) == 3 {
		addr := string(c.args[2])
		for _, cc := range s.clientList() {
			if cc.addr == addr {
				cc.kill(c.conn)
				return ok, nil
			}
		}
		return nil, redisError("ERR No such client")
	}
	if len(c.args)%2 != 0 {
		return nil, errSyntax
	}
	var (
		id                int64
		addr, laddr, user string
		skipMe            = true
	)
	for args := c.args[2:]; len(args) > 0; args = args[2:] {
		val := string(args[1])
		switch strings.ToLower(string(args[0])) {
		case "id":
			n, isInt := parseInt(args[1])
			if !isInt || n <= 0 {
				return nil, redisError("ERR client-id should be greater than 0")
			}
			id = n
		case "addr":
			addr = val
		case "laddr":
			laddr = val
		case "user":
			user = val
		case "skipme":
			switch strings.ToLower(val) {
			case "yes":
				skipMe = true
			case "no":
				skipMe = false
			default:
				return nil, errSyntax
			}
		default:
			return nil, errSyntax
		}
	}
	var victims []*clientConn
	for _, cc := range s.clientList() {
		cc.pubMu.Lock()
		ccUser := cc.pub.user
		cc.pubMu.Unlock()
		switch {
		case id != 0 && cc.sess.id != id,
			addr != "" && cc.addr != addr,
			laddr != "" && cc.laddr != laddr,
			user != "" && ccUser != user,
			skipMe && cc == c.conn:
			continue
		}
		victims = append(victims, cc)
	}
	for _, cc := range victims {
		cc.kill(c.conn)
	}
	return len(victims), nil
}
