package server

import "net"

// PipelinedTotal returns how many commands s has served as pipelines whose
// commands share log entries (serveBatch), for tests.
func PipelinedTotal(s *Server) int64 { return s.pipelinedTotal.Load() }

// Clients returns how many client connections s is serving, for tests.
func Clients(s *Server) int64 { return s.clients.Load() }

// ServeConn serves nc as if s had accepted it, and returns when it is done,
// for tests that need a client address a loopback test cannot have.
func ServeConn(s *Server, nc net.Conn) {
	if s.trackConn(nc) {
		s.serveConn(nc)
	}
}

// SetShutdownHook makes every SHUTDOWN on s call hook just before it
// commits to stopping (the last moment SHUTDOWN ABORT can cancel it), for
// tests.
func SetShutdownHook(s *Server, hook func()) {
	s.shut.mu.Lock()
	s.shut.beforeCommit = hook
	s.shut.mu.Unlock()
}

// ShutdownWaiters returns how many SHUTDOWNs wait for the outcome of the
// one preparing s's stop, for tests.
func ShutdownWaiters(s *Server) int {
	s.shut.mu.Lock()
	defer s.shut.mu.Unlock()
	if s.shut.attempt == nil {
		return 0
	}
	return s.shut.attempt.waiters
}

// RaftDown reports whether s's bounded waits on Raft have been ended
// (raftwait.go), for tests.
func RaftDown(s *Server) bool {
	select {
	case <-s.raft.down:
		return true
	default:
		return false
	}
}
