package config

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// MetricsRetentionBytes parses metrics-retention-size: a whole number of
// bytes with an optional unit (B, KB, MB, GB, TB in powers of 1000, KiB,
// MiB, GiB, TiB in powers of 1024); empty or 0 means no bound.
func (c Config) MetricsRetentionBytes() (int64, error) {
	s := strings.TrimSpace(c.MetricsRetentionSize)
	if s == "" || s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("want a size such as 10GB, 512MiB or 1073741824 (bytes); empty for no bound")
	}
	return n * mult, nil
}

// checkRemoteWriteURL accepts http(s) URLs with a host and no credentials.
func checkRemoteWriteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want the http(s) URL of a remote-write receiver, e.g. http://prometheus:9090/api/v1/write")
	}
	if u.User != nil {
		return errors.New("credentials in the URL are not supported (they would show in logs); put the receiver behind a proxy that adds them")
	}
	return nil
}
