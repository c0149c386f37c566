package cri

// NRIStatus is what verbose Status says of NRI.
type NRIStatus struct {
	Enabled bool     `json:"enabled"`
	Socket  string   `json:"socket,omitempty"` // "" when plugins cannot connect
	Plugins []string `json:"plugins"`          // connected and synchronized
}

// WithNRIStatus makes verbose Status report NRI's state, asked at each call.
func (s *Server) WithNRIStatus(f func() NRIStatus) *Server {
	s.nriStatus = f
	return s
}
