package config

import (
	"net"
	"net/url"
	"strconv"
)

// validateTelemetry checks [metrics] and [tracing].
func (c *Config) validateTelemetry(bad func(key, format string, args ...any)) {
	if a := c.Metrics.Address; a != "" {
		if err := checkHostPort(a); err != "" {
			bad("metrics.address", "must be host:port (e.g. \"127.0.0.1:9090\"), got %q: %s", a, err)
		}
	}
	if (c.Metrics.TLSCert == "") != (c.Metrics.TLSKey == "") {
		bad("metrics.tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.Metrics.TLSCert != "" && c.Metrics.Address == "" {
		bad("metrics.tls_cert", "is set but metrics.address is empty, so metrics are off")
	}
	if e := c.Tracing.Endpoint; e != "" {
		if err := checkEndpoint(e); err != "" {
			bad("tracing.endpoint", "must be host:port, http://host:port or https://host:port, got %q: %s", e, err)
		}
	}
	if r := c.Tracing.SamplingRatePerMillion; r < 0 || r > 1_000_000 {
		bad("tracing.sampling_rate_per_million", "must be between 0 and 1000000, got %d", r)
	}
}

// checkHostPort says what is wrong with a listen address, "" if nothing.
func checkHostPort(a string) string {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return err.Error()
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "bad port " + strconv.Quote(port)
	}
	return ""
}

// checkEndpoint says what is wrong with an OTLP endpoint, "" if nothing.
func checkEndpoint(e string) string {
	u, err := url.Parse(e)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if u.Host == "" {
			return "no host"
		}
		if u.Port() == "" {
			return "no port"
		}
		return ""
	}
	return checkHostPort(e)
}
