package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// damages are the ways a record file is found broken at start.
var damages = map[string]func(t *testing.T, path string){
	"truncated": func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	},
	"garbage": func(t *testing.T, path string) {
		if err := os.WriteFile(path, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024), 0o600); err != nil {
			t.Fatal(err)
		}
	},
	"empty": func(t *testing.T, path string) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	},
}

// restartWith stops d, applies damage, starts d again and returns the log
// of that start once a second stop let it be read; d is running again after.
func restartWith(t *testing.T, d *daemon, damage func()) (startLog string) {
	t.Helper()
	d.stop()
	damage()
	d.start()
	// The log is the daemon's until it exits.
	d.stop()
	startLog = d.log.String()
	d.start()
	return startLog
}

// corruptFixture: a daemon with busybox pulled as two names (one used by a
// container, one only pulled, with a layer of its own), and a pod with a
// running container.
type corruptFixture struct {
	d                   *daemon
	reg                 *testkit.Registry
	used, spare         string
	pod                 *runtimeapi.PodSandboxConfig
	podID, ctrID, other string
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	needRoot(t)
	f := &corruptFixture{reg: testkit.NewRegistry(t)}
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	f.reg.MustPush(t, "it/used:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base))
	f.reg.MustPush(t, "it/spare:1", testkit.MustImage(t, testkit.ImageConfig{}, base,
		testkit.MustLayer(t, []testkit.Entry{testkit.File("spare", "only this image has it")}, testkit.Gzip)))
	f.used, f.spare = f.reg.Ref("it/used:1"), f.reg.Ref("it/spare:1")
	f.d = newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, f.d)
	f.d.start()
	ctx := context.Background()
	for _, ref := range []string{f.used, f.spare} {
		if _, err := f.d.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.pod = podConfig("corrupt", runtimeapi.NamespaceMode_CONTAINER)
	f.pod.LogDirectory = filepath.Join(f.d.dir, "logs")
	var err error
	if f.podID, err = f.d.Runtime.RunPodSandbox(ctx, f.pod, ""); err != nil {
		t.Fatal(err)
	}
	f.ctrID = runContainer(t, f.d, f.podID, f.pod, containerConfig("first", f.used, "sleep", "3600"))
	f.other = runContainer(t, f.d, f.podID, f.pod, containerConfig("second", f.used, "sleep", "3600"))
	return f
}

// A damaged images.db: the daemon starts, sets it aside naming it in the
// log, keeps serving pods and containers, prunes the layers no one holds
// any more, and the images can be pulled again.
func TestFaultCorruptImageDB(t *testing.T) {
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			f := newCorruptFixture(t)
			d := f.d
			ctx := context.Background()
			layersBefore := len(d.layerDirs())
			db := filepath.Join(d.root, "images", "images.db")
			log := restartWith(t, d, func() { damage(t, db) })

			if !strings.Contains(log, db) || !strings.Contains(log, "damaged") {
				t.Errorf("no log line names the damaged %s:\n%s", db, log)
			}
			if _, err := os.Stat(db + ".corrupt"); err != nil {
				t.Errorf("the damaged database was not set aside: %v", err)
			}
			if imgs, err := d.Images.ListImages(ctx, nil); err != nil || len(imgs) != 0 {
				t.Errorf("ListImages after the database was lost = %v, %v", imgs, err)
			}
			// The spare image's own layer is pruned; the base stays, held
			// by the running containers.
			if got := len(d.layerDirs()); got != layersBefore-1 {
				t.Errorf("layers %v after the restart, want %d (the spare's own layer pruned)", d.layerDirs(), layersBefore-1)
			}
			for _, id := range []string{f.ctrID, f.other} {
				if st := waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING); st == nil {
					t.Errorf("container %s not served", id)
				}
			}
			for _, ref := range []string{f.used, f.spare} {
				if _, err := d.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
					t.Errorf("re-pull %s: %v", ref, err)
				}
			}
			runContainer(t, d, f.podID, f.pod, containerConfig("third", f.used, "sleep", "3600"))
			if err := d.Images.RemoveImage(ctx, spec(f.spare)); err != nil {
				t.Errorf("RemoveImage of a re-pulled image: %v", err)
			}
		})
	}
}

// A damaged pod record: the daemon starts, sets the file aside naming it
// in the log, and serves the other pods and their containers.
func TestFaultCorruptPodRecord(t *testing.T) {
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			f := newCorruptFixture(t)
			d := f.d
			ctx := context.Background()
			victim := podConfig("victim", runtimeapi.NamespaceMode_CONTAINER)
			victim.LogDirectory = f.pod.LogDirectory
			victimID, err := d.Runtime.RunPodSandbox(ctx, victim, "")
			if err != nil {
				t.Fatal(err)
			}
			// A container in the lost pod must not run on once the pod's
			// network is torn down and its IP can go to another pod.
			stranded := runContainer(t, d, victimID, victim, containerConfig("stranded", f.used, "sleep", "3600"))
			record := filepath.Join(d.root, "pods", victimID+".json")
			log := restartWith(t, d, func() { damage(t, record) })
			waitState(t, d, stranded, runtimeapi.ContainerState_CONTAINER_EXITED)
			if err := d.Runtime.RemoveContainer(ctx, stranded); err != nil {
				t.Errorf("remove the lost pod's container: %v", err)
			}

			if !strings.Contains(log, record) {
				t.Errorf("no log line names the damaged %s:\n%s", record, log)
			}
			if _, err := os.Stat(record + ".corrupt"); err != nil {
				t.Errorf("the damaged record was not set aside: %v", err)
			}
			if _, err := d.Runtime.PodSandboxStatus(ctx, f.podID, false); err != nil {
				t.Errorf("the intact pod is not served: %v", err)
			}
			for _, id := range []string{f.ctrID, f.other} {
				waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
			}
			// The lost pod's namespaces and network are torn down as an
			// orphan's; a pod of that name runs again.
			eventually(t, 30*time.Second, "the lost pod's pins and network attachment to go", func() bool {
				cached, _ := filepath.Glob(filepath.Join(d.root, "cni-cache", "results", "*"+victimID+"*"))
				return len(mountsUnder(t, filepath.Join(d.state, "pods", victimID))) == 0 && len(cached) == 0
			})
			if _, err := d.Runtime.RunPodSandbox(ctx, victim, ""); err != nil {
				t.Errorf("RunPodSandbox of the lost pod's name: %v", err)
			}
			runContainer(t, d, f.podID, f.pod, containerConfig("third", f.used, "sleep", "3600"))
		})
	}
}

// A damaged container record: the daemon starts, sets the file aside
// naming it in the log, and serves the other containers.
func TestFaultCorruptContainerRecord(t *testing.T) {
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			f := newCorruptFixture(t)
			d := f.d
			ctx := context.Background()
			record := filepath.Join(d.root, "containers", f.ctrID, "record.json")
			log := restartWith(t, d, func() { damage(t, record) })

			if !strings.Contains(log, f.ctrID) || !strings.Contains(log, "corrupt") {
				t.Errorf("no log line names the damaged record of %s:\n%s", f.ctrID, log)
			}
			setAside := false
			if matches, _ := filepath.Glob(filepath.Join(d.root, "containers", f.ctrID+"*.corrupt")); len(matches) > 0 {
				setAside = true
			} else if _, err := os.Stat(record + ".corrupt"); err == nil {
				setAside = true
			}
			waitState(t, d, f.other, runtimeapi.ContainerState_CONTAINER_RUNNING)
			if _, err := d.Runtime.PodSandboxStatus(ctx, f.podID, false); err != nil {
				t.Errorf("the pod is not served: %v", err)
			}
			// The lost container's process does not run on unseen.
			eventually(t, 30*time.Second, "the lost container to be gone from the runtime", func() bool {
				st, err := os.Stat(filepath.Join(d.state, "runtime", "runc", f.ctrID))
				return st == nil && os.IsNotExist(err)
			})
			runContainer(t, d, f.podID, f.pod, containerConfig("first", f.used, "sleep", "3600"))
			if !setAside {
				t.Errorf("the damaged record of %s was not set aside", f.ctrID)
			}
		})
	}
}
