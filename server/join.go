package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/resp"
)

// join asks the members in cfg.Join, in turn, to admit this node, until one
// does, one refuses for a reason retrying cannot fix, or ctx ends.
func (s *Server) join(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		for _, addr := range s.cfg.Join {
			err := s.askToJoin(ctx, addr)
			if err == nil {
				s.log.Info("joined cluster", "via", addr)
				return nil
			}
			if isPermanent(err) {
				return fmt.Errorf("join via %s: %w", addr, err)
			}
			s.log.Warn("join attempt failed; retrying", "via", addr, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %v: %w", s.cfg.Join, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// joinRefused is a join error that retrying will not fix.
type joinRefused struct{ msg string }

func (e joinRefused) Error() string { return e.msg }

func isPermanent(err error) bool {
	_, ok := err.(joinRefused)
	return ok
}

func (s *Server) askToJoin(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderWait+s.cfg.ApplyTimeout)
	defer cancel()
	raw, err := s.pools.Get(addr).Do(ctx, []byte("RAFT.JOIN"), []byte(s.cfg.ID), []byte(s.RaftAddr()), []byte(s.advert))
	switch {
	case err != nil:
		if ok := isAuthErr(err); ok {
			return joinRefused{err.Error()}
		}
		return err
	case bytes.Equal(raw, []byte("+OK\r\n")):
		return nil
	case bytes.HasPrefix(raw, []byte("-CLUSTERDOWN")), bytes.HasPrefix(raw, []byte("-TRYAGAIN")):
		return fmt.Errorf("%s", resp.ErrorText(raw))
	default:
		return joinRefused{"refused: " + resp.ErrorText(raw)}
	}
}

// keepRegistered makes sure the state machine records this node's current
// RESP address, so that followers can forward to it when it leads. A node
// restarted on a new RESP port re-registers itself; a node that is not in
// the Raft configuration (it was removed) does nothing, so that it never
// re-adds itself.
func (s *Server) keepRegistered() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.register:
		}
		raftAddr, member := s.configuredAddr()
		if !member {
			continue
		}
		if addr, ok := s.fsm.NodeAddr(s.cfg.ID); ok && addr == s.advert && raftAddr == s.RaftAddr() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		if s.isReady() {
			// A leader whose configured Raft address is not the one it
			// listens on (restarted on a new port, or recovered with
			// another address) corrects it, so that the next leader can
			// reach it.
			if raftAddr != s.RaftAddr() {
				if err := s.addVoter(s.cfg.ID, s.RaftAddr()); err != nil {
					s.log.Warn("updating own Raft address failed", "err", err)
				}
			}
			_, err := s.prop.propose(ctx, fsm.SetNode{ID: s.cfg.ID, RESPAddr: s.advert})
			if err != nil {
				s.log.Warn("recording own RESP address failed", "err", err)
			}
		} else if s.leading() {
			// Elected, not ready yet: the next tick records it; asking
			// itself would only open a connection to itself.
		} else if leaderAddr, ok := s.leaderAddr(); ok {
			if err := s.askToJoin(ctx, leaderAddr); err != nil {
				s.log.Warn("re-registering RESP address failed", "err", err)
			}
		} else {
			// No leader is known: if this node came back on a new Raft
			// address, the leader cannot reach it to say who it is. Ask
			// the members it knows of (its state may not list them yet:
			// then the --join addresses); a follower passes RAFT.JOIN on
			// to the leader, which updates the address.
			var via []string
			for _, m := range s.peers() {
				if m.resp != "" {
					via = append(via, m.resp)
				}
			}
			for _, addr := range append(via, s.cfg.Join...) {
				if err := s.askToJoin(ctx, addr); err == nil {
					s.log.Info("re-registered own addresses", "via", addr)
					break
				} else {
					s.log.Debug("re-registering via a member failed", "via", addr, "err", err)
				}
			}
		}
		cancel()
	}
}

// configuredAddr returns the Raft address this node has in the Raft
// configuration, and whether it is a member at all.
func (s *Server) configuredAddr() (string, bool) {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return "", false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(s.cfg.ID) {
			return string(srv.Address), true
		}
	}
	return "", false
}

func isAuthErr(err error) bool { return errors.Is(err, resp.ErrAuth) }
