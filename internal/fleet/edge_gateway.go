package fleet

import (
	"context"
	"fmt"

	"github.com/pave-platform/pave/internal/gateway"
)

// GatewayEdge is the embedded edge: a Pave gateway in edge mode in front
// of each local cluster's gateway. Requests keep their Host and carry
// X-Pave-Edge so the cluster's gateway splits by version only, and a
// request whose cluster cannot be reached is retried in another one.
type GatewayEdge struct {
	Gateway *gateway.Gateway
	// Endpoints are the addresses of each cluster's gateways.
	Endpoints func(cluster string) []string
}

// Apply sets the service's cluster split.
func (e GatewayEdge) Apply(_ context.Context, service string, shares []Share) error {
	cs := make([]gateway.Cluster, 0, len(shares))
	for _, s := range shares {
		eps := e.Endpoints(s.Cluster)
		if len(eps) == 0 {
			return fmt.Errorf("cluster %s has no gateway address at the edge", s.Cluster)
		}
		cs = append(cs, gateway.Cluster{Name: s.Cluster, Weight: s.Weight, Endpoints: eps})
	}
	return e.Gateway.SetClusterWeights(service, cs)
}
