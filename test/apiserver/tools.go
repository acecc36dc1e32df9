//go:build tools

// Package apiserver only pins the real kube-apiserver and etcd that the
// Kubernetes integration tests run (scripts/kube-apiserver.sh builds them);
// it is a module of its own so the product's go.mod never carries
// k8s.io/kubernetes.
package apiserver

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
