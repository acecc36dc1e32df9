package runtime

import "context"

// GoWorkEnv is the environment entry (nil or "GOWORK=off") that builds the
// Go module in src as its own repository's CI would, for other builders of
// services (pave build) that must agree with `pave run` on it.
func GoWorkEnv(ctx context.Context, goCmd, src string, env []string) []string {
	return outsideWorkspace(ctx, goCmd, src, env)
}
