package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// PinNetworks parses GatewayPinNetworks: CIDR prefixes or bare addresses;
// "none" (alone) trusts no network. The result is never nil, so the
// gateway does not fall back to its default.
func (c Config) PinNetworks() ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, s := range c.GatewayPinNetworks {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			continue
		case strings.EqualFold(s, "none"):
			if len(c.GatewayPinNetworks) > 1 {
				return nil, fmt.Errorf("none cannot be combined with networks")
			}
			return out, nil
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a network: want CIDR such as 10.0.0.0/8 or 127.0.0.1/32, or none", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
