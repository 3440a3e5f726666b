package server

// PipelinedTotal returns how many commands s has served as pipelines whose
// commands share log entries (servePipelined), for tests.
func PipelinedTotal(s *Server) int64 { return s.pipelinedTotal.Load() }
