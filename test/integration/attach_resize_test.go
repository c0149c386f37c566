package integration

import (
	"context"
	"os/exec"
	"syscall"
	"testing"

	"github.com/cradle-runtime/cradle/internal/testkit"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attaching to a tty container sizes its terminal like the caller's, and
// later resizes follow (through conmon).
func TestAttachResizesTheContainersTerminal(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/attachtty:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/attachtty:1")
	d, pod, podID, _ := podWithImage(t, "attachtty", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})
	// Prints its terminal's size whenever it changes.
	cfg := containerConfig("tty", imageName, "sh", "-c",
		`last=; while :; do s=$(stty size 2>/dev/null); if [ "$s" != "$last" ]; then echo "size:$s"; last=$s; fi; sleep 0.05; done`)
	cfg.Tty, cfg.Stdin = true, true
	id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)

	master, slave := openPTY(t)
	setWinsize(t, slave, 120, 40)
	cmd := exec.Command(binary(t), "--runtime-endpoint", "unix://"+d.socket, "attach", "-i", "-t", id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	term := &ptyReader{}
	go term.drain(master)
	term.waitFor(t, "size:40 120", nil)

	setWinsize(t, slave, 90, 25)
	term.waitFor(t, "size:25 90", func() { _ = cmd.Process.Signal(syscall.SIGWINCH) })
}
