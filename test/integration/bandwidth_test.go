package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cradle-runtime/cradle/internal/testnet"
)

// The pod's bandwidth annotations reach the CNI bandwidth plugin, which
// shapes the pod's traffic; DEL takes the shaping away with the pod.
func TestPodBandwidthAnnotationsShapeTraffic(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/usr/lib/cni/bandwidth"); err != nil {
		t.Skip("CNI bandwidth plugin missing (apt-get install containernetworking-plugins)")
	}
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("tc missing (apt-get install iproute2)")
	}
	d := newDaemonFiles(t, daemonOpts{})
	bwNet := testnet.MustLease()
	bridge := bwNet.Bridge
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cradle-it-bw","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"bandwidth","capabilities":{"bandwidth":true}},
 {"type":"loopback"}]}`, bridge, bwNet.V4.String(), filepath.Join(d.dir, "ipam"))
	dir := filepath.Join(d.dir, "cni")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-bw.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	d.start()
	ctx := context.Background()

	bad := podConfig("bw-bad", 0)
	bad.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "lots"}
	if _, err := d.Runtime.RunPodSandbox(ctx, bad, ""); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ingress-bandwidth") {
		t.Fatalf("bad annotation: %v, want InvalidArgument naming it", err)
	}

	pod := podConfig("bw", 0)
	pod.Annotations = map[string]string{
		"kubernetes.io/ingress-bandwidth": "3M",
		"kubernetes.io/egress-bandwidth":  "5M",
	}
	id, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	qdiscs := func() string {
		out, err := exec.Command("tc", "qdisc", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("tc qdisc show: %v: %s", err, out)
		}
		return string(out)
	}
	// Ingress is shaped on the host end of the pod's veth, egress on the
	// plugin's ifb device.
	q := qdiscs()
	if !strings.Contains(q, "rate 3Mbit") || !strings.Contains(q, "rate 5Mbit") {
		t.Fatalf("no 3Mbit/5Mbit tbf qdiscs after RunPodSandbox:\n%s", q)
	}
	if err := d.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if q := qdiscs(); strings.Contains(q, "rate 5Mbit") || strings.Contains(q, "rate 3Mbit") {
		t.Fatalf("shaping left after StopPodSandbox:\n%s", q)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
}
