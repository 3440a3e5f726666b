package server

// RaftStats returns s's Raft statistics (term, last_log_index, ...), for
// tests.
func RaftStats(s *Server) map[string]string { return s.raft.Stats() }

// RaftServers returns the IDs and addresses of s's Raft configuration, for
// tests.
func RaftServers(s *Server) []string {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []string
	for _, srv := range f.Configuration().Servers {
		out = append(out, string(srv.ID)+"@"+string(srv.Address)+"/"+srv.Suffrage.String())
	}
	return out
}
