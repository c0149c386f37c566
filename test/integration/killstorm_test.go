package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// stormRounds is how many times the daemon is killed.
const stormRounds = 20

// TestKillStorm SIGKILLs the daemon at random moments while pods are being
// started and stopped concurrently, restarts it each time, and checks that
// it serves at once, that a sentinel container started before the storm
// keeps running with the same pid and answers exec, that every pod left
// can be stopped and removed with the normal calls, and that nothing is
// left after.
func TestKillStorm(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/storm:1", img); err != nil {
		t.Fatal(err)
	}
	image := reg.Ref("it/storm:1")
	d := newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	sentinelPod := podConfig("sentinel", runtimeapi.NamespaceMode_CONTAINER)
	sentinelPod.LogDirectory = t.TempDir()
	sentinelPodID, err := d.Runtime.RunPodSandbox(ctx, sentinelPod, "")
	if err != nil {
		t.Fatal(err)
	}
	sentinel := runContainer(t, d, sentinelPodID, sentinelPod, containerConfig("sentinel", image, "sleep", "3600"))
	pid := containerPid(t, d, sentinel)
	ids := []string{sentinelPodID, sentinel}
	var idsMu sync.Mutex
	seen := func(id string) {
		idsMu.Lock()
		ids = append(ids, id)
		idsMu.Unlock()
	}

	logDir := t.TempDir()
	for round := range stormRounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() { churn(d, image, logDir, fmt.Sprintf("r%dw%d", round, w), stop, seen) })
		}
		time.Sleep(time.Duration(50+rand.IntN(700)) * time.Millisecond) // the kill lands anywhere
		d.kill()
		close(stop)
		wg.Wait()
		began := time.Now()
		d.start()
		if took := time.Since(began); took > time.Second {
			t.Errorf("round %d: restarted daemon took %v to serve", round, took)
		}
		d.checkListsAnswer(t)
	}

	// Everything the storm left behind goes with the normal calls.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	pods, err := d.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.Id == sentinelPodID {
			continue
		}
		if err := d.Runtime.StopPodSandbox(ctx, p.Id); err != nil {
			t.Errorf("stop pod %s (%s) left by the storm: %v", p.Id, p.Metadata.Name, err)
		}
		if err := d.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
			t.Errorf("remove pod %s (%s) left by the storm: %v", p.Id, p.Metadata.Name, err)
		}
	}
	t.Logf("the storm left %d pods", len(pods)-1)

	if got := containerPid(t, d, sentinel); got != pid {
		t.Errorf("sentinel pid %d after the storm, was %d", got, pid)
	}
	if out, err := execOut(d, sentinel, "echo", "alive"); err != nil || out != "alive\n" {
		t.Errorf("exec in the sentinel after the storm: %q %v", out, err)
	}
	if err := d.Runtime.StopPodSandbox(ctx, sentinelPodID); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, sentinelPodID); err != nil {
		t.Fatal(err)
	}
	if err := d.Images.RemoveImage(ctx, spec(image)); err != nil {
		t.Fatal(err)
	}
	d.assertNoTrace(t, ids)
	d.assertCheckClean(t)
}

// churn runs pod lifecycles (run, create, start, stop, remove) until stop
// closes; errors are expected once the daemon is killed.
func churn(d *daemon, image, logDir, prefix string, stop <-chan struct{}, seen func(string)) {
	rt := d.Runtime
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		pod := podConfig(fmt.Sprintf("%s-%d", prefix, i), runtimeapi.NamespaceMode_POD)
		pod.LogDirectory = logDir
		func() {
			defer cancel()
			podID, err := rt.RunPodSandbox(ctx, pod, "")
			if err != nil {
				return
			}
			seen(podID)
			id, err := rt.CreateContainer(ctx, podID, containerConfig("c", image, "sleep", "3600"), pod)
			if err != nil {
				return
			}
			seen(id)
			if rt.StartContainer(ctx, id) != nil || rt.StopPodSandbox(ctx, podID) != nil {
				return
			}
			_ = rt.RemovePodSandbox(ctx, podID)
		}()
	}
}

func containerPid(t *testing.T, d *daemon, id string) int {
	t.Helper()
	resp, err := d.Runtime.ContainerStatus(context.Background(), id, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("container %s: no pid in verbose status (%v): %v", id, err, resp.GetInfo())
	}
	return info.Pid
}
