package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A RuntimeClass handler an operator removes from the configuration (or
// whose binary goes away) while its pods run must not strand them: after a
// restart they are still listed, running, and Stop and Remove finish; only
// new pods and containers on it are refused.
func TestRemovedHandlerCanStillStopAndRemove(t *testing.T) {
	needRoot(t)
	_, image := featureImage(t)
	bin := handlerScript(t, t.TempDir(), "alt-runtime", "exec runc features")
	handler := fmt.Sprintf("[runtime.handlers.alt]\npath = %q\n", bin)
	d := newDaemonFiles(t, daemonOpts{extraConfig: handler})
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	// A shared PID namespace: the pod's init runs on the handler too.
	pod := podConfig("alt", runtimeapi.NamespaceMode_POD)
	pod.LogDirectory = t.TempDir()
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "alt")
	if err != nil {
		t.Fatal(err)
	}
	ctr := runContainer(t, d, podID, pod, containerConfig("app", image, "sleep", "3600"))
	created, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("later", image, "sleep", "3600"), pod)
	if err != nil {
		t.Fatal(err)
	}

	d.stop()
	// The handler is gone from the configuration, and its binary too.
	conf, _ := os.ReadFile(d.config)
	if err := os.WriteFile(d.config, []byte(string(conf)[:len(conf)-len(handler)]), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(bin)
	d.start()

	st := waitState(t, d, ctr, runtimeapi.ContainerState_CONTAINER_RUNNING)
	t.Logf("container %s still %v on the removed handler", st.Id, st.State)
	if _, err := d.Runtime.RunPodSandbox(ctx, podConfig("alt2", runtimeapi.NamespaceMode_CONTAINER), "alt"); status.Code(err) == codes.OK {
		t.Error("a new pod on the removed handler was accepted")
	}
	if err := d.Runtime.StartContainer(ctx, created); err != nil {
		t.Logf("start of a container created before the removal: %v", err)
	}
	if err := d.Runtime.StopContainer(ctx, ctr, 0); err != nil {
		t.Fatalf("stop a container of the removed handler: %v", err)
	}
	waitState(t, d, ctr, runtimeapi.ContainerState_CONTAINER_EXITED)
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatalf("stop a pod of the removed handler: %v", err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatalf("remove a pod of the removed handler: %v", err)
	}
	if err := d.Images.RemoveImage(ctx, spec(image)); err != nil {
		t.Fatal(err)
	}
	d.assertNoTrace(t, []string{podID, ctr, created})
	if left, _ := filepath.Glob(filepath.Join(d.state, "oci", "alt", "ctr", "*")); len(left) > 0 {
		t.Errorf("runtime state left: %v", left)
	}
}
