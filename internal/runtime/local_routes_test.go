package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// routeRecorder is a RouteSink that refuses templates without a '/'.
type routeRecorder struct {
	mu  sync.Mutex
	set map[string][]string
	n   int
}

func (r *routeRecorder) CheckRoutes(ps []string) error {
	for i, p := range ps {
		if !strings.Contains(p, "/") {
			return fmt.Errorf("routes[%d]: %q has no path", i, p)
		}
	}
	return nil
}

func (r *routeRecorder) SetServiceRoutes(service string, ps []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if ps == nil {
		delete(r.set, service)
		return nil
	}
	r.set[service] = ps
	return nil
}

func TestReadRoutesBesideSourceOrBinary(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, ".pave.yaml"), []byte("template: service\nroutes:\n  - GET /v1/orders/{id}\n  - POST /v1/pay\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readRoutes(Deployment{Source: src})
	if err != nil || !slices.Equal(got, []string{"GET /v1/orders/{id}", "POST /v1/pay"}) {
		t.Fatalf("source: %v %v", got, err)
	}
	got, err = readRoutes(Deployment{Binary: filepath.Join(src, "svc")})
	if err != nil || len(got) != 2 {
		t.Fatalf("binary beside .pave.yaml: %v %v", got, err)
	}
	if got, err := readRoutes(Deployment{Source: t.TempDir()}); err != nil || got != nil {
		t.Fatalf("no .pave.yaml: %v %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(src, ".pave.yaml"), []byte("routes: GET /x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRoutes(Deployment{Source: src}); err == nil || !strings.Contains(err.Error(), ".pave.yaml") {
		t.Fatalf("routes not a list: %v", err)
	}

	l := newEnv(t).local(t, func(o *LocalOptions) { o.Routes = &routeRecorder{} })
	if err := os.WriteFile(filepath.Join(src, ".pave.yaml"), []byte("routes: [\"GET /ok\", \"nopath\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = l.deployRoutes(Deployment{Source: src})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "source" || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "routes[1]") {
		t.Fatalf("a route the sink refuses: %v", err)
	}
}

// publishRoutes hands over the union of the deployed versions' lists,
// oldest version first, only when it changes, and clears a service whose
// versions are all gone.
func TestPublishRoutesUnionOfVersions(t *testing.T) {
	rec := &routeRecorder{set: map[string][]string{}}
	l := newEnv(t).local(t, func(o *LocalOptions) { o.Routes = rec })
	t0 := time.Now()
	v1 := storedDeployment{Deployment: Deployment{Service: "orders", Version: "v1"}, Deployed: t0, Routes: []string{"GET /a", "POST /b"}}
	v2 := storedDeployment{Deployment: Deployment{Service: "orders", Version: "v2"}, Deployed: t0.Add(time.Minute), Routes: []string{"POST /b", "GET /c/{id}"}}
	plain := storedDeployment{Deployment: Deployment{Service: "plain", Version: "v1"}, Deployed: t0}
	l.publishRoutes([]storedDeployment{v2, plain, v1})
	if got := rec.set["orders"]; !slices.Equal(got, []string{"GET /a", "POST /b", "GET /c/{id}"}) {
		t.Fatalf("orders: %v", got)
	}
	if _, ok := rec.set["plain"]; ok || rec.n != 1 {
		t.Fatalf("a service without routes was given some, or calls %d != 1: %v", rec.n, rec.set)
	}
	l.publishRoutes([]storedDeployment{v1, v2, plain})
	if rec.n != 1 {
		t.Fatalf("an unchanged union was handed over again (%d calls)", rec.n)
	}
	l.publishRoutes([]storedDeployment{v2})
	if got := rec.set["orders"]; !slices.Equal(got, []string{"POST /b", "GET /c/{id}"}) {
		t.Fatalf("after v1 was removed: %v", got)
	}
	l.publishRoutes(nil)
	if _, ok := rec.set["orders"]; ok {
		t.Fatalf("routes of a service with no version left: %v", rec.set["orders"])
	}
}
