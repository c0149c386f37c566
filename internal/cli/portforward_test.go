package cli

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var forwardingLine = regexp.MustCompile(`Forwarding from (\S+) -> (\d+)`)

// forwardedPorts waits for the "Forwarding from" lines and returns the
// listen addresses, keyed by remote port.
func forwardedPorts(t *testing.T, out *syncBuffer, n int) map[string]string {
	t.Helper()
	var m [][]string
	waitUntil(t, "the forwarding lines", func() bool {
		m = forwardingLine.FindAllStringSubmatch(out.String(), -1)
		return len(m) >= n
	})
	ports := map[string]string{}
	for _, g := range m {
		ports[g[2]] = g[1]
	}
	return ports
}

func ping(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", msg); err != nil {
		return "", err
	}
	return bufio.NewReader(conn).ReadString('\n')
}

func TestPortForwardListensOnLoopbackAndForwards(t *testing.T) {
	t.Parallel()
	f, ep := newStreamFake(t)
	env, out, _ := testEnv()
	stop := startCLI(t, env, ep, "port-forward", "aa1", ":8080", "0:9999")
	ports := forwardedPorts(t, out, 2)
	addr := ports["8080"]
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("listens on %s, want 127.0.0.1 only", addr)
	}
	for i := range 3 {
		got, err := ping(t, addr, fmt.Sprint("hello ", i))
		if err != nil || got != fmt.Sprintf("pong hello %d\n", i) {
			t.Fatalf("through the forward: %q, %v", got, err)
		}
	}
	r := stop()
	if r.code != 0 {
		t.Errorf("Ctrl-C ended port-forward with %d: %s", r.code, r.stderr)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("%s still listens after the forward stopped", addr)
	}
	reqs := requests(f, &f.st.forwardReqs)
	if len(reqs) != 1 || reqs[0].PodSandboxId != podA || !slices.Equal(reqs[0].Port, []int32{8080, 9999}) {
		t.Errorf("port forward requests %v", reqs)
	}
}

// TestPortForwardEndsOnPodError: as in kubectl, an error from the pod's
// side (here a port nothing listens on) ends the whole forward rather than
// leaving it half-broken.
func TestPortForwardEndsOnPodError(t *testing.T) {
	t.Parallel()
	_, ep := newStreamFake(t)
	env, out, _ := testEnv()
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), []string{"-r", ep, "port-forward", podA, ":9999"}, env) }()
	addr := forwardedPorts(t, out, 1)["9999"]
	if got, err := ping(t, addr, "x"); err == nil && got != "" {
		t.Errorf("refused port answered %q", got)
	}
	select {
	case code := <-done:
		stderr := env.stderr.(*syncBuffer).String()
		if code != 1 || !strings.Contains(stderr, "lost connection to pod") ||
			!strings.Contains(stderr, "Error: An error occurred forwarding localPort=") ||
			!strings.Contains(stderr, "remotePort=9999: error forwarding port 9999 to pod "+podA+", uid : dial port 9999: connection refused") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("port-forward went on after the pod refused")
	}
}

func TestPortForwardAddressFlag(t *testing.T) {
	t.Parallel()
	_, ep := newStreamFake(t)
	env, out, _ := testEnv()
	stop := startCLI(t, env, ep, "port-forward", "--address", "127.0.0.1,::1", podA, ":8080")
	ports := forwardedPorts(t, out, 2)
	if !strings.Contains(out.String(), "[::1]:") || !strings.Contains(out.String(), "127.0.0.1:") {
		t.Errorf("not on both addresses:\n%s", out.String())
	}
	if got, err := ping(t, ports["8080"], "v6?"); err != nil || got != "pong v6?\n" {
		t.Errorf("through %s: %q, %v", ports["8080"], got, err)
	}
	if r := stop(); r.code != 0 {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}
