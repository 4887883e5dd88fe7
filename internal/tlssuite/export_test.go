package tlssuite

// VerifierTables is how many connections hold an Ed25519 table now.
func (s *Server) VerifierTables() int64 { return s.tables.Load() }
