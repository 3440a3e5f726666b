package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"
)

// cmdPing serves PING [message].
func cmdPing(s *Server, c *call) {
	switch len(c.args) {
	case 1:
		c.conn.WriteString("PONG")
	case 2:
		c.conn.WriteBulk(c.args[1])
	default:
		c.conn.WriteError(wrongArity("ping"))
	}
}

// cmdEcho serves ECHO message.
func cmdEcho(s *Server, c *call) {
	if !c.hasArity("echo", 2) {
		return
	}
	c.conn.WriteBulk(c.args[1])
}

// cmdQuit serves QUIT: reply OK and close the connection.
func cmdQuit(s *Server, c *call) {
	c.conn.WriteString("OK")
	c.conn.Close()
}

// cmdSelect serves SELECT index. throttledb has one database, 0.
func cmdSelect(s *Server, c *call) {
	if !c.hasArity("select", 2) {
		return
	}
	n, ok := parseInt(c.args[1])
	switch {
	case !ok:
		c.conn.WriteError(msgNotInteger)
	case n != 0:
		c.conn.WriteError(msgDBIndex)
	default:
		c.conn.WriteString("OK")
	}
}

// cmdAuth serves AUTH [username] password. The only user is "default".
func cmdAuth(s *Server, c *call) {
	if len(c.args) > 3 {
		c.conn.WriteError(msgSyntax)
		return
	}
	user, pass := "default", c.args[len(c.args)-1]
	if len(c.args) == 3 {
		user = string(c.args[1])
	}
	if s.cfg.RequirePass == "" && len(c.args) == 2 {
		c.conn.WriteError(msgNoPassword)
		return
	}
	if !s.authenticate(c.sess, user, pass) {
		c.conn.WriteError(msgWrongPass)
		return
	}
	c.conn.WriteString("OK")
}

func (s *Server) checkPassword(user string, pass []byte) bool {
	if user != "default" {
		return false
	}
	if s.cfg.RequirePass == "" {
		return true // Redis's default user has nopass: any password works
	}
	// Compare SHA-256 digests, as Redis does: they have the same length
	// whatever was sent, so the time taken reveals neither the password's
	// length (ConstantTimeCompare returns at once on unequal lengths) nor
	// how much of it matched.
	given := sha256.Sum256(pass)
	return subtle.ConstantTimeCompare(given[:], s.passDigest[:]) == 1
}

// cmdHello serves HELLO [protover [AUTH username password] [SETNAME name]].
// Protocol 2 and 3 are spoken. Every reply throttledb sends has the same
// bytes in both, except nulls and maps (the HELLO reply itself, CONFIG GET,
// COMMAND DOCS), which follow the session's protocol; so a reply forwarded
// from the leader, relayed byte for byte, is right in either.
func cmdHello(s *Server, c *call) {
	args := c.args[1:]
	resp3 := c.sess.resp3
	if len(args) > 0 {
		v, ok := parseInt(args[0])
		if !ok {
			c.conn.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			c.conn.WriteError(msgNoProto)
			return
		}
		resp3 = v == 3
		args = args[1:]
	}
	var name []byte
	setName := false
	for len(args) > 0 {
		switch opt := strings.ToLower(string(args[0])); {
		case opt == "auth" && len(args) >= 3:
			if !s.authenticate(c.sess, string(args[1]), args[2]) {
				c.conn.WriteError(msgWrongPass)
				return
			}
			args = args[3:]
		case opt == "setname" && len(args) >= 2:
			name, setName = args[1], true
			args = args[2:]
		default:
			c.conn.WriteError("ERR Syntax error in HELLO option '" + clip(args[0]) + "'")
			return
		}
	}
	if !c.sess.authed {
		// Redis's exact words for HELLO before AUTH.
		c.conn.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	if setName {
		if msg := validClientName(name); msg != "" {
			c.conn.WriteError(msg)
			return
		}
		c.sess.name = string(name)
	}
	c.sess.resp3 = resp3
	role := "replica"
	if s.isReady() {
		role = "master"
	}
	proto := 2
	if resp3 {
		proto = 3
	}
	c.writeMapHeader(7)
	c.conn.WriteBulkString("server")
	c.conn.WriteBulkString("throttledb")
	c.conn.WriteBulkString("version")
	c.conn.WriteBulkString(Version)
	c.conn.WriteBulkString("proto")
	c.conn.WriteInt(proto)
	c.conn.WriteBulkString("id")
	c.conn.WriteInt64(c.sess.id)
	c.conn.WriteBulkString("mode")
	c.conn.WriteBulkString("standalone")
	c.conn.WriteBulkString("role")
	c.conn.WriteBulkString(role)
	c.conn.WriteBulkString("modules")
	c.conn.WriteArray(0)
}

func validClientName(name []byte) string {
	for _, b := range name {
		if b < '!' || b > '~' {
			return "ERR Client names cannot contain spaces, newlines or special characters."
		}
	}
	return ""
}

// cmdClient serves CLIENT SETNAME name | GETNAME | ID | SETINFO attr value |
// INFO | LIST [...] | KILL ... | HELP (LIST and KILL in clients.go).
func cmdClient(s *Server, c *call) {
	if !c.hasArity("client", -2) {
		return
	}
	sub := strings.ToLower(string(c.args[1]))
	arity := map[string]int{"setname": 3, "getname": 2, "id": 2, "setinfo": 4, "info": 2, "list": -2, "kill": -3, "help": 2}
	n, known := arity[sub]
	if !known {
		c.conn.WriteError(unknownSubcommand(c.args[1], "client"))
		return
	}
	if (n > 0 && len(c.args) != n) || (n < 0 && len(c.args) < -n) {
		c.conn.WriteError(wrongArity("client|" + sub))
		return
	}
	switch sub {
	case "setname":
		if msg := validClientName(c.args[2]); msg != "" {
			c.conn.WriteError(msg)
			return
		}
		c.sess.name = string(c.args[2])
		c.conn.WriteString("OK")
	case "getname":
		if c.sess.name == "" {
			c.writeNull()
			return
		}
		c.conn.WriteBulkString(c.sess.name)
	case "id":
		c.conn.WriteInt64(c.sess.id)
	case "setinfo":
		attr := strings.ToLower(string(c.args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			c.conn.WriteError("ERR Unrecognized option '" + clip(c.args[2]) + "'")
			return
		}
		// Redis's rule for both: no spaces, newlines or special characters.
		for _, b := range c.args[3] {
			if b < '!' || b > '~' {
				c.conn.WriteError("ERR " + attr + " cannot contain spaces, newlines or special characters.")
				return
			}
		}
		if attr == "lib-name" {
			c.sess.libName = string(c.args[3])
		} else {
			c.sess.libVer = string(c.args[3])
		}
		c.conn.WriteString("OK")
	case "info":
		c.conn.WriteBulkString(c.conn.clientLine(time.Now()) + "\n")
	case "list":
		cmdClientList(s, c)
	case "kill":
		cmdClientKill(s, c)
	case "help":
		lines := []string{
			"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
			"ID", "    Return the ID of the current connection.",
			"GETNAME", "    Return the name of the current connection.",
			"SETNAME <name>", "    Assign the name <name> to the current connection.",
			"SETINFO <option> <value>", "    Set LIB-NAME or LIB-VER, shown by CLIENT LIST.",
			"INFO", "    Return information about the current client connection.",
			"LIST [TYPE <type>] [ID <id> [<id> ...]]", "    Return information about client connections.",
			"KILL <ip:port>", "    Kill connection made from <ip:port>.",
			"KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are: ID <id>, ADDR <ip:port>, LADDR <ip:port>, USER <username>, SKIPME (YES|NO).",
		}
		c.conn.WriteArray(len(lines))
		for _, l := range lines {
			c.conn.WriteString(l)
		}
	}
}
