package main

import (
	"context"
	"net/netip"
	"time"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/config"
)

// gatewayPinning says who may choose a version at the gateway (pin it with
// X-Pave-Version, or stick to one): clients on the gateway-pin-networks,
// and testers presenting a token of role deployer or higher in
// X-Pave-Tester-Token (the gateway caches each verdict for 30 s).
func gatewayPinning(cfg config.Config, tokens auth.Tokens) ([]netip.Prefix, func(token string) bool) {
	nets, err := cfg.PinNetworks()
	if err != nil { // checked when the configuration was loaded; be safe anyway
		nets = []netip.Prefix{}
	}
	return nets, func(token string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, role, err := tokens.Verify(ctx, token)
		return err == nil && role >= auth.RoleDeployer
	}
}
