package scaffold

import (
	"bytes"
	"os"
	"testing"
)

// GitHub runs reusable workflows only from .github/workflows, and does not
// follow symlinks there; the source of truth is ci/github/service.yaml, and
// the published copy must never drift from it.
func TestReusableWorkflowPublished(t *testing.T) {
	src, err := os.ReadFile("../../ci/github/service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("../../.github/workflows/service.yaml")
	if err != nil {
		t.Fatalf("the reusable workflow is not published: %v (cp ci/github/service.yaml .github/workflows/)", err)
	}
	if !bytes.Equal(src, pub) {
		t.Fatal(".github/workflows/service.yaml differs from ci/github/service.yaml: cp ci/github/service.yaml .github/workflows/")
	}
}
