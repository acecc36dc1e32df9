package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/kube"
)

// ClustersAPI serves /api/v1/clusters: the registered clusters, their
// share of traffic at the edge, drains, and (embedded mode) the loss of a
// cluster for failover drills.
type ClustersAPI struct {
	Registry *fleet.Registry
	// Probe checks a cluster now (API reachability); nil skips it.
	Probe fleet.Prober
	// Lose simulates the loss of an embedded cluster; nil when the mode
	// has none to lose.
	Lose func(ctx context.Context, name string) (killed int, err error)
	// Gateway gives an embedded cluster's gateway address ("" for none).
	Gateway func(name string) string
	// LocalKey is the data directory's local-proof key (auth.EnsureLocalKey):
	// a kubeconfig with exec plugins or file references is accepted only
	// with an AllowExecProof made with it, i.e. from `pave cluster add
	// --allow-exec` on the control plane's machine. nil refuses them all.
	LocalKey []byte
}

// Register adds the cluster routes to s.
func (a ClustersAPI) Register(s *Server) {
	s.HandleFunc("GET /api/v1/clusters", a.list, Require(auth.RoleViewer))
	s.HandleFunc("POST /api/v1/clusters", a.add, Require(auth.RoleAdmin))
	s.HandleFunc("GET /api/v1/clusters/{name}", a.get, Require(auth.RoleViewer))
	s.HandleFunc("DELETE /api/v1/clusters/{name}", a.remove, Require(auth.RoleAdmin))
	s.HandleFunc("POST /api/v1/clusters/{name}/drain", a.drain(true))
	s.HandleFunc("POST /api/v1/clusters/{name}/undrain", a.drain(false))
	s.HandleFunc("POST /api/v1/clusters/{name}/lose", a.lose, Require(auth.RoleAdmin))
}

// ClusterView is one cluster as the API shows it.
type ClusterView struct {
	fleet.Cluster
	// Share is the cluster's part of traffic at the edge now, in percent.
	Share float64 `json:"share"`
	// DrainFactor is 1 when serving fully, 0 when drained.
	DrainFactor float64 `json:"drainFactor"`
	// Gateway is where an embedded cluster's gateway listens.
	Gateway string `json:"gateway,omitempty"`
	// Reachable and Problem are a probe made for this answer (get only).
	Reachable *bool  `json:"reachable,omitempty"`
	Problem   string `json:"problem,omitempty"`
}

// ClusterList is the answer of GET /api/v1/clusters.
type ClusterList struct {
	Clusters []ClusterView `json:"clusters"`
}

// ClusterAddRequest is the body of POST /api/v1/clusters; Kubeconfig is
// the file's content.
type ClusterAddRequest struct {
	Name       string `json:"name"`
	Kubeconfig string `json:"kubeconfig"`
	Context    string `json:"context,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Router     string `json:"router,omitempty"`
	Prometheus string `json:"prometheus,omitempty"`
	Weight     int64  `json:"weight,omitempty"`
	// AllowExecProof (from `pave cluster add --allow-exec`) lets the
	// kubeconfig keep exec plugins and local file references: an HMAC of
	// the name and kubeconfig under the data directory's local key,
	// which only the operator on the control plane's machine can read.
	AllowExecProof string `json:"allowExecProof,omitempty"`
}

// AllowExecProof proves to the control plane whose local key is key that
// the kubeconfig of cluster name was allowed its local references by
// someone who can read the data directory.
func AllowExecProof(key []byte, name, kubeconfig string) string {
	return auth.LocalProof(key, "allow-exec", name, kubeconfig)
}

// DrainRequest is the body of drain and undrain: the pace, e.g. "10%/min".
type DrainRequest struct {
	Pace string `json:"pace,omitempty"`
}

func (a ClustersAPI) views(ctx context.Context) ([]ClusterView, error) {
	all, err := a.Registry.List(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	shares := fleet.Shares(all, now)
	out := make([]ClusterView, len(all))
	for i, c := range all {
		out[i] = ClusterView{Cluster: c, Share: float64(shares[i].Weight) / 10_000, DrainFactor: c.Drain.Factor(now)}
		if a.Gateway != nil {
			out[i].Gateway = a.Gateway(c.Name)
		}
	}
	return out, nil
}

// probe asks the cluster now whether it answers, within 5 s.
func (a ClustersAPI) probe(ctx context.Context, v *ClusterView) {
	if a.Probe == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := a.Probe.Probe(ctx, v.Cluster)
	ok := err == nil
	v.Reachable = &ok
	if err != nil {
		v.Problem = err.Error()
	}
}

func (a ClustersAPI) list(w http.ResponseWriter, r *http.Request) {
	v, err := a.views(r.Context())
	if err != nil {
		writeClusterError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, ClusterList{Clusters: v})
}

func (a ClustersAPI) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	all, err := a.views(r.Context())
	if err != nil {
		writeClusterError(w, err)
		return
	}
	for _, v := range all {
		if v.Name != name {
			continue
		}
		a.probe(r.Context(), &v)
		WriteJSON(w, http.StatusOK, v)
		return
	}
	writeClusterError(w, &FieldError{Field: "name", Err: errors.Join(fleet.ErrNotFound, errors.New("no cluster named "+name+" (see pave cluster list)"))})
}

func (a ClustersAPI) add(w http.ResponseWriter, r *http.Request) {
	var req ClusterAddRequest
	if err := ReadJSON(r, &req); err != nil {
		WriteError(w, http.StatusBadRequest, err)
		return
	}
	if req.Kubeconfig == "" {
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "kubeconfig", Err: errors.New("missing: give the kubeconfig file's content (pave cluster add NAME --kubeconfig FILE)")})
		return
	}
	var opts []fleet.AddOption
	if req.AllowExecProof != "" {
		if !auth.VerifyLocalProof(a.LocalKey, req.AllowExecProof, "allow-exec", req.Name, req.Kubeconfig) {
			WriteError(w, http.StatusForbidden, &FieldError{Field: "allowExecProof", Err: errors.New(
				"does not prove local access: --allow-exec works only from the CLI on the control plane's machine, run by the user who can read its data directory")})
			return
		}
		opts = append(opts, fleet.AllowLocalReferences())
	}
	c, err := a.Registry.AddKubernetes(r.Context(), fleet.Cluster{Name: req.Name, Context: req.Context, Datacenter: req.Datacenter,
		Namespace: req.Namespace, Router: req.Router, Prometheus: req.Prometheus, Weight: req.Weight}, []byte(req.Kubeconfig), opts...)
	if err != nil {
		writeClusterError(w, err)
		return
	}
	v := ClusterView{Cluster: c, DrainFactor: 1}
	a.probe(r.Context(), &v)
	WriteJSON(w, http.StatusCreated, v)
}

func (a ClustersAPI) remove(w http.ResponseWriter, r *http.Request) {
	if err := a.Registry.Remove(r.Context(), r.PathValue("name")); err != nil {
		writeClusterError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a ClustersAPI) drain(drain bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req DrainRequest
		if r.ContentLength != 0 {
			if err := ReadJSON(r, &req); err != nil {
				WriteError(w, http.StatusBadRequest, err)
				return
			}
		}
		if req.Pace == "" {
			req.Pace = fleet.DefaultPace
		}
		pace, err := fleet.ParsePace(req.Pace)
		if err != nil {
			writeClusterError(w, &FieldError{Field: "pace", Err: err})
			return
		}
		c, err := a.Registry.SetDrain(r.Context(), r.PathValue("name"), drain, pace, time.Now())
		if err != nil {
			writeClusterError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, ClusterView{Cluster: c, DrainFactor: c.Drain.Factor(time.Now())})
	}
}

// LoseAnswer is the answer of POST /api/v1/clusters/{name}/lose.
type LoseAnswer struct {
	Cluster         string `json:"cluster"`
	KilledInstances int    `json:"killedInstances"`
}

func (a ClustersAPI) lose(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if a.Lose == nil {
		WriteError(w, http.StatusConflict, errors.New("only embedded clusters of pave up --clusters can be lost on purpose"))
		return
	}
	n, err := a.Lose(r.Context(), name)
	if err != nil {
		writeClusterError(w, err)
		return
	}
	WriteJSON(w, http.StatusOK, LoseAnswer{Cluster: name, KilledInstances: n})
}

func writeClusterError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, fleet.ErrLocalReference):
		WriteError(w, http.StatusBadRequest, &FieldError{Field: "kubeconfig", Err: err})
	case errors.Is(err, fleet.ErrInvalid), errors.Is(err, kube.ErrKubeconfig):
		WriteError(w, http.StatusBadRequest, err)
	default:
		WriteError(w, http.StatusInternalServerError, err)
	}
}
