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
