package server

import "strconv"

// call is one command being served.
type call struct {
	conn *clientConn
	sess *session
	args [][]byte
	fwd  bool // arrived through RAFT.FWD from another node
}

// session is the per-connection state.
type session struct {
	id     int64
	authed bool
	name   string
	// libName and libVer are what CLIENT SETINFO set, for CLIENT LIST.
	libName, libVer string
	tx              *txState // open transaction (after MULTI), or nil
	resp3           bool     // HELLO 3 was accepted: null and maps in RESP3 form
	node            bool     // authenticated as NodeUser with the cluster secret
}

// writeNull writes a null reply: `_` in RESP3, a null bulk string in RESP2.
func (c *call) writeNull() {
	if c.sess.resp3 {
		c.conn.WriteRaw([]byte("_\r\n"))
		return
	}
	c.conn.WriteNull()
}

// writeMapHeader starts a reply of n key-value pairs: a RESP3 map, or in
// RESP2 a flat array of 2n elements (Redis's own RESP2 form of a map).
func (c *call) writeMapHeader(n int) {
	if c.sess.resp3 {
		c.conn.WriteRaw([]byte("%" + strconv.Itoa(n) + "\r\n"))
		return
	}
	c.conn.WriteArray(2 * n)
}
