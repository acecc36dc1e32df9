package fleet

import "context"

// Share is one cluster's part of a service's traffic at the edge, in parts
// per million (traffic.Total in all).
type Share struct {
	Cluster    string `json:"cluster"`
	Datacenter string `json:"datacenter,omitempty"`
	Weight     int64  `json:"weight"`
}

// Edge splits a service's traffic between clusters. Providers, one file
// each: the embedded gateway in edge mode, Istio locality load balancing,
// a webhook for DNS / GSLB setups. Apply is idempotent and either takes
// the whole split or leaves the previous one in force.
type Edge interface {
	Apply(ctx context.Context, service string, shares []Share) error
}
