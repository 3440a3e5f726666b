package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

// member is one server of the Raft configuration with its RESP address.
type member struct {
	id, raftAddr, resp string
	voter, leader      bool
}

// members joins the Raft configuration with the RESP addresses recorded in
// the state machine.
func (s *Server) members() ([]member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	_, lid := s.raft.LeaderWithID()
	var out []member
	for _, srv := range f.Configuration().Servers {
		addr, _ := s.fsm.NodeAddr(string(srv.ID))
		out = append(out, member{
			id: string(srv.ID), raftAddr: string(srv.Address), resp: addr,
			voter: srv.Suffrage == raft.Voter, leader: srv.ID == lid,
		})
	}
	return out, nil
}

// peers returns the members other than this node.
func (s *Server) peers() []member {
	ms, _ := s.members()
	out := ms[:0]
	for _, m := range ms {
		if m.id != s.cfg.ID {
			out = append(out, m)
		}
	}
	return out
}

// cmdRaftJoin serves RAFT.JOIN id raft-addr resp-addr: add a voter (or update
// its addresses) and record its RESP address. It is idempotent, so a node
// that restarts and joins again is not duplicated.
func cmdRaftJoin(s *Server, c *call) (any, error) {
	if err := s.nodeOnly(c.sess, "raft.join"); err != nil {
		return nil, err
	}
	node, raftAddr, err := parseJoin(c.args)
	if err != nil {
		return nil, err
	}
	id, respAddr := node.ID, node.RESPAddr
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		if err := s.addVoter(id, raftAddr); err != nil {
			return nil, err
		}
		if res, err := s.prop.propose(ctx, node); err != nil {
			return nil, err
		} else if res.Err != nil {
			return nil, res.Err
		}
		s.log.Info("node joined", "id", id, "raft", raftAddr, "resp", respAddr)
		return ok, nil
	})
}

// parseJoin parses and validates RAFT.JOIN id raft-addr resp-addr (args
// includes the command name).
//
// Why validate more than non-emptiness: the ID and RESP address go into the
// log and from there into every snapshot, and the ID and Raft address into
// Raft's configuration; a snapshot holding a member field longer than the
// image reader accepts could never be restored. fsm.ValidateNode caps them
// at fsm.MaxNodeFieldLen and requires host:port addresses.
func parseJoin(args [][]byte) (fsm.SetNode, string, error) {
	id, raftAddr, respAddr := string(args[1]), string(args[2]), string(args[3])
	if id == "" || raftAddr == "" || respAddr == "" {
		return fsm.SetNode{}, "", redisError("ERR RAFT.JOIN needs a non-empty id, raft address and RESP address")
	}
	if err := fsm.ValidateNode(id, respAddr); err != nil {
		return fsm.SetNode{}, "", err
	}
	if err := fsm.ValidateAddr(raftAddr); err != nil {
		return fsm.SetNode{}, "", err
	}
	return fsm.SetNode{ID: id, RESPAddr: respAddr}, raftAddr, nil
}

// addVoter makes id a voter at raftAddr, removing first any other member
// that claims the same address (a node that came back under a new ID).
func (s *Server) addVoter(id, raftAddr string) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return classifyApplyErr(err)
	}
	for _, srv := range f.Configuration().Servers {
		sameID, sameAddr := srv.ID == raft.ServerID(id), srv.Address == raft.ServerAddress(raftAddr)
		if sameID && sameAddr && srv.Suffrage == raft.Voter {
			return nil // already a member: joining again changes nothing
		}
		if sameAddr && !sameID {
			if err := s.raft.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout).Error(); err != nil {
				return membershipErr(err)
			}
		}
	}
	return membershipErr(s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, s.cfg.ApplyTimeout).Error())
}

// membershipErr classifies a configuration change error. A membership change
// whose fate is unknown may be retried: it is idempotent.
func membershipErr(err error) error {
	if err == nil {
		return nil
	}
	switch cerr := classifyApplyErr(err); {
	case errors.Is(cerr, ErrNotLeader):
		return cerr
	case errors.Is(err, raft.ErrLeadershipLost):
		// It may or may not have been committed: TRYAGAIN, which a
		// joining node retries (a join is idempotent), never a refusal.
		return cerr
	}
	return fmt.Errorf("membership change failed: %v", err)
}

// cmdRaftRemove serves RAFT.REMOVE id: remove a member from the cluster.
func cmdRaftRemove(s *Server, c *call) (any, error) {
	id := string(c.args[1])
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		ms, err := s.members()
		if err != nil {
			return nil, classifyApplyErr(err)
		}
		found := false
		for _, m := range ms {
			found = found || m.id == id
		}
		if !found {
			return nil, errNoSuchNode(c.args[1])
		}
		// Forget the RESP address first: once this leader removes itself it
		// can no longer propose.
		if _, err := s.prop.propose(ctx, fsm.RemoveNode{ID: id}); err != nil {
			return nil, err
		}
		if err := membershipErr(s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout).Error()); err != nil {
			return nil, err
		}
		s.log.Info("node removed", "id", id)
		return ok, nil
	})
}

// errNoSuchNode is the reply to a membership command naming no member.
func errNoSuchNode(id []byte) error { return redisError("ERR no such node '" + clip(id) + "'") }

// cmdRaftNodes serves RAFT.NODES: for every member, an array of id, raft
// address, RESP address, "voter" or "nonvoter", and "leader" or "follower".
func cmdRaftNodes(s *Server, c *call) (any, error) {
	ms, err := s.members()
	if err != nil {
		return nil, err
	}
	out := make([]any, len(ms))
	for i, m := range ms {
		suffrage, role := "nonvoter", "follower"
		if m.voter {
			suffrage = "voter"
		}
		if m.leader {
			role = "leader"
		}
		out[i] = []string{m.id, m.raftAddr, m.resp, suffrage, role}
	}
	return out, nil
}

// cmdRaftLeader serves RAFT.LEADER: the leader's id and RESP address, or
// CLUSTERDOWN when none is known.
func cmdRaftLeader(s *Server, c *call) (any, error) {
	id, addr, ok := s.leader()
	if !ok {
		return nil, ErrNoLeader
	}
	return []string{id, addr}, nil
}

// Why a command about Raft failed, in the words of its reply.
var (
	errTransferFailed = errors.New("leadership transfer failed")
	errSnapshotFailed = errors.New("snapshot failed")
)

// cmdRaftTransfer serves RAFT.TRANSFER [id]: hand leadership to id, or to
// the most up-to-date follower, and wait until it has moved.
func cmdRaftTransfer(s *Server, c *call) (any, error) {
	if len(c.args) > 2 {
		return nil, errArity("raft.transfer")
	}
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		var f raft.Future
		if len(c.args) == 2 {
			target := ""
			for _, m := range s.peers() {
				if m.id == string(c.args[1]) {
					target = m.raftAddr
				}
			}
			if target == "" {
				return nil, errNoSuchNode(c.args[1])
			}
			f = s.raft.LeadershipTransferToServer(raft.ServerID(c.args[1]), raft.ServerAddress(target))
		} else {
			f = s.raft.LeadershipTransfer()
		}
		if err := f.Error(); err != nil {
			return nil, fmt.Errorf("%w: %w", errTransferFailed, err)
		}
		return ok, nil
	})
}

// cmdRaftSnapshot serves RAFT.SNAPSHOT: take a snapshot of this node's state
// now and compact its log.
func cmdRaftSnapshot(s *Server, c *call) (any, error) {
	err := s.raft.Snapshot().Error()
	if err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, fmt.Errorf("%w: %w", errSnapshotFailed, err)
	}
	return ok, nil
}

// cmdRaftDigest serves RAFT.DIGEST: this node's (not the leader's) last
// applied log index and a hex SHA-256 digest of its replicated state at that
// index (fsm.FSM.Digest). Replicas that report the same index must report
// the same digest; the fault tests check that after healing.
func cmdRaftDigest(s *Server, c *call) (any, error) {
	index, sum := s.fsm.Digest()
	return []any{int64(index), hex.EncodeToString(sum[:])}, nil
}

// cmdRaftFwd serves RAFT.FWD command [arg ...], the wrapper a follower sends
// to the leader: the inner command is served here and never forwarded again.
//
// Why the inner command may not be RAFT.FWD: a follower wraps a command
// once, so a nested RAFT.FWD is never legitimate, and serving it by
// dispatching again would recurse once per level (4.5 million levels in one
// command overflowed the stack). It is refused before dispatch, so the
// depth of dispatch stays at two whatever arrives. Writes are not relayed
// this way but forwarded as fsm-encoded proposals (RAFT.PROPOSE), which
// hold no commands to dispatch.
func cmdRaftFwd(s *Server, c *call) (any, error) {
	if err := s.nodeOnly(c.sess, "raft.fwd"); err != nil {
		return nil, err
	}
	if c.fwd || strings.EqualFold(string(c.args[1]), "raft.fwd") {
		return nil, errNestedFwd
	}
	return s.serveAlone(&call{conn: c.conn, sess: c.sess, args: c.args[1:], fwd: true})
}

// errNestedFwd is the reply to a RAFT.FWD inside a RAFT.FWD.
var errNestedFwd = redisError("ERR RAFT.FWD cannot be nested")
