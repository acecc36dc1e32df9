package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/state"
)

// openTokenStore opens the state store `pave token create` writes a
// bootstrap token into: the one --state-store names, else the one the
// control plane's settings name (pave.yaml, PAVE_STATE_STORE), else
// --data-dir's state.db. It is the store `pave up` would open with the
// same settings (openState), so the token authenticates on every replica
// sharing it.
func openTokenStore(cmd *cobra.Command, dataDir, stateStore string) (state.Store, error) {
	// The control plane's settings, without its flags: the file and the
	// environment say where its state is when --state-store does not.
	cfg, err := config.Bind(pflag.NewFlagSet("settings", pflag.ContinueOnError)).Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if stateStore != "" {
		cfg.StateStore = stateStore
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if err := state.CheckSetting(cfg.StateStore); err != nil {
		return nil, fmt.Errorf("setting state-store (%s): %w", state.Describe(cfg.StateStore), err)
	}
	if (cfg.StateStore == "" || cfg.StateStore == "sqlite") && dataDir == "" {
		return nil, fmt.Errorf("setting state-store is sqlite: name the control plane's data directory with --data-dir, or its PostgreSQL with --state-store postgres://…")
	}
	return openState(cmd.Context(), cfg)
}
