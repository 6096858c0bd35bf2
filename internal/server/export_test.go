package server

import "time"

// KillPart ends a long-lived part's current run as if it had died.
func (s *Server) KillPart(name string) { s.parts.kill(name) }

// SetRestartBackoff sets how long a stopped part waits to restart.
func (s *Server) SetRestartBackoff(d time.Duration) { s.parts.backoff, s.parts.maxBackoff = d, d }

// FlushPayloads writes the payloads logged so far.
func (s *Server) FlushPayloads() { s.serve.FlushPayloads() }
