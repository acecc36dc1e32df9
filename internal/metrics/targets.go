package metrics

// Target is one endpoint to scrape.
type Target struct {
	// Address is host:port, e.g. 127.0.0.1:41234.
	Address string
	// Path is the metrics path (default /metrics).
	Path string
	// Labels are attached to every series of the target (service,
	// version, instance, cluster). "instance" overrides the address.
	Labels map[string]string
}

// SetTargets replaces the targets of job (JobServices, JobGateway or
// JobPave). A target whose address, path and labels are unchanged keeps
// its scrape loop (and its schedule), so a caller may poll.
func (s *Store) SetTargets(job string, ts []Target) {
	s.scrape.setTargets(job, ts)
}
