package server

import "time"

// cmdRaftPropose serves RAFT.PROPOSE request, the forwarding RPC a
// follower sends on a node session (see rpc.go and forwarder.go): the
// leader queues the request's proposals to its proposer, in order, and
// answers with every proposal's outcome. A node that is not the ready
// leader answers NOTLEADER, and the follower routes the proposals again.
// A connection that sends only RAFT.PROPOSE is served by an rpcWriter
// instead, which does the same without waiting for one request's outcome
// before reading the next (rpc_conn.go).
func cmdRaftPropose(s *Server, c *call) (any, error) {
	if err := s.nodeOnly(c.sess, "raft.propose"); err != nil {
		return nil, err
	}
	s.lastRPC.Store(time.Now().UnixNano())
	props, early, err := decodeProposeRequest(c.args[1])
	if err != nil {
		return nil, err
	}
	if !s.isReady() {
		return nil, ErrNotLeader
	}
	return rawReply(s.awaitProposals(s.queueProposals(props, early))), nil
}
