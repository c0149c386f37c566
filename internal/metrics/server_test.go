package metrics

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

func scrape(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

func newTestServer(t *testing.T) (*Server, *Metrics) {
	m := New(Sources{})
	m.PullBytes(42)
	s := NewServer(m, nil)
	t.Cleanup(s.Close)
	return s, m
}

func TestServesPlainHTTPAndApplies(t *testing.T) {
	s, _ := newTestServer(t)
	if s.Addr() != nil {
		t.Fatal("serving before Apply")
	}
	if err := s.Apply(config.Metrics{Address: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	first := s.Addr().String()
	if body := scrape(t, http.DefaultClient, "http://"+first+"/metrics"); !strings.Contains(body, "cradle_image_pull_bytes_total 42") {
		t.Errorf("scrape lacks the pull bytes:\n%s", body)
	}
	// The same configuration again keeps the listener.
	if err := s.Apply(config.Metrics{Address: "127.0.0.1:0"}); err != nil || s.Addr().String() != first {
		t.Errorf("re-applying the same config moved the server: %v, %v", err, s.Addr())
	}
	// A bad address fails and the old listener serves on.
	if err := s.Apply(config.Metrics{Address: "256.0.0.1:1"}); err == nil {
		t.Error("a bad address was applied")
	}
	scrape(t, http.DefaultClient, "http://"+first+"/metrics")
	// A new address moves it.
	if err := s.Apply(config.Metrics{Address: "127.0.0.2:0"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Addr().String(), "127.0.0.2:") {
		t.Errorf("moved to %v", s.Addr())
	}
	scrape(t, http.DefaultClient, "http://"+s.Addr().String()+"/metrics")
	if _, err := net.Dial("tcp", first); err == nil {
		t.Errorf("the old address %s still accepts", first)
	}
	// Off.
	last := s.Addr().String()
	if err := s.Apply(config.Metrics{}); err != nil || s.Addr() != nil {
		t.Fatalf("off: %v, %v", err, s.Addr())
	}
	if _, err := net.Dial("tcp", last); err == nil {
		t.Errorf("%s still accepts after the server was turned off", last)
	}
}

func TestServesHTTPSWithConfiguredCert(t *testing.T) {
	s, _ := newTestServer(t)
	cert, key, roots := testkit.ServerCertFiles(t, t.TempDir())
	if err := s.Apply(config.Metrics{Address: "127.0.0.1:0", TLSCert: cert, TLSKey: key}); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	url := "https://" + s.Addr().String() + "/metrics"
	if body := scrape(t, client, url); !strings.Contains(body, "cradle_image_pull_bytes_total 42") {
		t.Errorf("HTTPS scrape lacks the pull bytes:\n%s", body)
	}
	// Plain HTTP on the TLS port is no scrape.
	if resp, err := http.Get("http://" + s.Addr().String() + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS listener")
		}
	}
	// A renewed certificate is picked up by a reload of the same config.
	cert2, key2, roots2 := testkit.ServerCertFiles(t, t.TempDir())
	for _, f := range [][2]string{{cert2, cert}, {key2, key}} {
		b, err := readFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFile(f[1], b); err != nil {
			t.Fatal(err)
		}
	}
	addr := s.Addr().String()
	if err := s.Apply(config.Metrics{Address: "127.0.0.1:0", TLSCert: cert, TLSKey: key}); err != nil {
		t.Fatal(err)
	}
	if s.Addr().String() != addr {
		t.Errorf("a certificate renewal moved the listener")
	}
	client2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots2}}}
	scrape(t, client2, url)
	// A key pair that does not load is refused.
	if err := s.Apply(config.Metrics{Address: "127.0.0.1:0", TLSCert: key, TLSKey: cert}); err == nil {
		t.Error("a swapped cert and key were applied")
	}
	scrape(t, client2, url)
}

func readFile(p string) ([]byte, error)  { return os.ReadFile(p) }
func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o600) }
