package config

import (
	"errors"
	"net/url"
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
	n, err := ParseSize(s)
	if err != nil {
		return 0, errors.New("want a size such as 10GB, 512MiB or 1073741824 (bytes); empty for no bound")
	}
	return n, nil
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
