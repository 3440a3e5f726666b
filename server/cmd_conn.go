package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"
)

// cmdPing serves PING [message].
func cmdPing(s *Server, c *call) (any, error) {
	switch len(c.args) {
	case 1:
		return simpleString("PONG"), nil
	case 2:
		return c.args[1], nil
	default:
		return nil, errArity("ping")
	}
}

// cmdEcho serves ECHO message.
func cmdEcho(s *Server, c *call) (any, error) { return c.args[1], nil }

// cmdQuit serves QUIT: reply OK and close the connection.
func cmdQuit(s *Server, c *call) (any, error) {
	c.conn.Close() // once the replies so far, this one included, are written
	return ok, nil
}

// cmdSelect serves SELECT index. throttledb has one database, 0.
func cmdSelect(s *Server, c *call) (any, error) {
	n, isInt := parseInt(c.args[1])
	switch {
	case !isInt:
		return nil, errNotInteger
	case n != 0:
		return nil, errDBIndex
	}
	return ok, nil
}

// cmdAuth serves AUTH [username] password. The only user is "default".
func cmdAuth(s *Server, c *call) (any, error) {
	if len(c.args) > 3 {
		return nil, errSyntax
	}
	user, pass := "default", c.args[len(c.args)-1]
	if len(c.args) == 3 {
		user = string(c.args[1])
	}
	if s.cfg.RequirePass == "" && len(c.args) == 2 {
		return nil, errNoPassword
	}
	if !s.authenticate(c.sess, user, pass) {
		return nil, errWrongPass
	}
	return ok, nil
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
func cmdHello(s *Server, c *call) (any, error) {
	args := c.args[1:]
	resp3 := c.sess.resp3
	if len(args) > 0 {
		v, isInt := parseInt(args[0])
		if !isInt {
			return nil, redisError("ERR Protocol version is not an integer or out of range")
		}
		if v != 2 && v != 3 {
			return nil, errNoProto
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
				return nil, errWrongPass
			}
			args = args[3:]
		case opt == "setname" && len(args) >= 2:
			name, setName = args[1], true
			args = args[2:]
		default:
			return nil, redisError("ERR Syntax error in HELLO option '" + clip(args[0]) + "'")
		}
	}
	if !c.sess.authed {
		// Redis's exact words for HELLO before AUTH.
		return nil, redisError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	if setName {
		if err := validClientName(name); err != nil {
			return nil, err
		}
		c.sess.name = string(name)
	}
	// The reply below is written in the protocol chosen here.
	c.sess.resp3 = resp3
	role := "replica"
	if s.isReady() {
		role = "master"
	}
	proto := 2
	if resp3 {
		proto = 3
	}
	return mapReply{
		"server", "throttledb",
		"version", Version,
		"proto", proto,
		"id", c.sess.id,
		"mode", "standalone",
		"role", role,
		"modules", []any{},
	}, nil
}

// validClientName refuses a client name Redis would refuse.
func validClientName(name []byte) error {
	for _, b := range name {
		if b < '!' || b > '~' {
			return redisError("ERR Client names cannot contain spaces, newlines or special characters.")
		}
	}
	return nil
}

// clientArity is the arity of each CLIENT subcommand, in Redis's
// convention (the command and subcommand names count).
var clientArity = map[string]int{"setname": 3, "getname": 2, "id": 2, "setinfo": 4, "info": 2, "list": -2, "kill": -3, "help": 2}

// clientHelp is CLIENT HELP's reply.
var clientHelp = []string{
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

// cmdClient serves CLIENT SETNAME name | GETNAME | ID | SETINFO attr value |
// INFO | LIST [...] | KILL ... | HELP (LIST and KILL in clients.go).
func cmdClient(s *Server, c *call) (any, error) {
	sub := strings.ToLower(string(c.args[1]))
	n, known := clientArity[sub]
	if !known {
		return nil, errUnknownSubcommand(c.args[1], "client")
	}
	if !arityOK(n, len(c.args)) {
		return nil, errArity("client|" + sub)
	}
	switch sub {
	case "setname":
		if err := validClientName(c.args[2]); err != nil {
			return nil, err
		}
		c.sess.name = string(c.args[2])
		return ok, nil
	case "getname":
		if c.sess.name == "" {
			return nil, nil
		}
		return c.sess.name, nil
	case "id":
		return c.sess.id, nil
	case "setinfo":
		attr := strings.ToLower(string(c.args[2]))
		if attr != "lib-name" && attr != "lib-ver" {
			return nil, redisError("ERR Unrecognized option '" + clip(c.args[2]) + "'")
		}
		// Redis's rule for both: no spaces, newlines or special characters.
		for _, b := range c.args[3] {
			if b < '!' || b > '~' {
				return nil, redisError("ERR " + attr + " cannot contain spaces, newlines or special characters.")
			}
		}
		if attr == "lib-name" {
			c.sess.libName = string(c.args[3])
		} else {
			c.sess.libVer = string(c.args[3])
		}
		return ok, nil
	case "info":
		return c.conn.clientLine(time.Now()) + "\n", nil
	case "list":
		return cmdClientList(s, c)
	case "kill":
		return cmdClientKill(s, c)
	default: // help
		lines := make([]any, len(clientHelp))
		for i, l := range clientHelp {
			lines[i] = simpleString(l)
		}
		return lines, nil
	}
}
