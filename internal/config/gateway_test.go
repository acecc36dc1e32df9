package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestPinNetworks(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    string
		wantErr string
	}{
		{Default().GatewayPinNetworks, "[127.0.0.0/8 ::1/128]", ""},
		{[]string{"none"}, "[]", ""},
		{[]string{"10.1.2.3", "192.168.0.0/16"}, "[10.1.2.3/32 192.168.0.0/16]", ""},
		{[]string{"10.0.0.0/33"}, "", "not a network"},
		{[]string{"none", "10.0.0.0/8"}, "", "cannot be combined"},
	} {
		got, err := Config{GatewayPinNetworks: tc.in}.PinNetworks()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != tc.want || got == nil {
			t.Errorf("%v: %v %v, want %s", tc.in, got, err, tc.want)
		}
	}
	cfg, err := (&Loader{cfg: Default()}).Load(func(k string) string {
		if k == "PAVE_GATEWAY_PIN_NETWORKS" {
			return "10.0.0.0/8,fd00::/8"
		}
		return ""
	})
	if err != nil || strings.Join(cfg.GatewayPinNetworks, ",") != "10.0.0.0/8,fd00::/8" {
		t.Errorf("from the environment: %v %v", cfg.GatewayPinNetworks, err)
	}
	if _, err := (&Loader{cfg: Default()}).Load(func(k string) string {
		if k == "PAVE_GATEWAY_PIN_NETWORKS" {
			return "everyone"
		}
		return ""
	}); err == nil || !strings.Contains(err.Error(), "gateway-pin-networks") {
		t.Errorf("a bad network was accepted or the error does not name the setting: %v", err)
	}
}
