package server

// call is one command being served.
type call struct {
	conn *clientConn
	sess *session
	args [][]byte
	fwd  bool // arrived through RAFT.FWD from another node: never forwarded again
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
