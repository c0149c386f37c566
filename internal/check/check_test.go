package check

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/image"
)

// valid plants a consistent root and state: a READY and a NOTREADY pod,
// an exited container holding two layers, an image holding one of them and
// a third, and the READY pod's lease. It returns what must survive repairs.
func (e *env) valid() (survivors []string) {
	e.t.Helper()
	ready, stopped, ctr := newID(), newID(), newID()
	e.podRecord(ready, "ready", true)
	e.podRecord(stopped, "notready", false)
	l1, l2, l3 := e.layer(1), e.layer(2), e.layer(3)
	e.containerRecord(ctr, ready, "exited", []digest.Digest{l1, l2})
	e.image("example.test/app:1", []digest.Digest{l1, l3})
	lease := e.lease("10.99.0.2", ready)
	// Runtime state of the valid container: the fake runtime lists it.
	must(e.t, os.MkdirAll(filepath.Join(e.cfg.Handlers[0].RuntimeRoot, ctr), 0o700))
	return []string{
		filepath.Join(e.root, "pods", ready+".json"), filepath.Join(e.root, "pods", stopped+".json"),
		filepath.Join(e.root, "containers", ctr, "record.json"), filepath.Join(e.state, "containers", ctr),
		filepath.Join(e.root, "layers", l1.Encoded()), filepath.Join(e.root, "layers", l2.Encoded()),
		filepath.Join(e.root, "layers", l3.Encoded()), lease,
		filepath.Join(e.cfg.Handlers[0].RuntimeRoot, ctr),
	}
}

func TestValidSetupIsClean(t *testing.T) {
	e := newEnv(t)
	e.valid()
	rep := e.run(false)
	if !rep.Clean() || len(rep.Findings) != 0 {
		t.Fatalf("a consistent setup has findings:\n%s", dump(rep))
	}
	var out bytes.Buffer
	must(t, rep.WriteText(&out))
	if out.String() != "summary problems=0 status=clean\n" {
		t.Errorf("text output = %q", out.String())
	}
	out.Reset()
	must(t, rep.WriteJSON(&out))
	var decoded struct {
		Findings []Finding `json:"findings"`
		Clean    bool      `json:"clean"`
	}
	if err := json.Unmarshal(out.Bytes(), &decoded); err != nil || !decoded.Clean || decoded.Findings == nil {
		t.Errorf("json output %s: %v", out.String(), err)
	}
}

// TestFindsAndRepairs plants one of each kind of damage that needs no root
// beside a valid setup, checks that each is found with its repair, that
// the repair fixes all of them, and that nothing valid was touched.
func TestFindsAndRepairs(t *testing.T) {
	e := newEnv(t)
	survivors := e.valid()
	var wants []want

	// Pods: an unreadable record, a temp file, a dir without a record, a
	// READY pod whose state dir is gone.
	badPod := newID()
	must(t, os.WriteFile(filepath.Join(e.root, "pods", badPod+".json"), []byte("{not json"), 0o600))
	must(t, os.MkdirAll(filepath.Join(e.state, "pods", badPod), 0o700))
	wants = append(wants, want{"pod", "corrupt-record", badPod}, want{"pod", "orphan-dir", badPod})
	tmp := filepath.Join(e.root, "pods", ".x.json.123.tmp")
	must(t, os.WriteFile(tmp, nil, 0o600))
	wants = append(wants, want{"pod", "temp-file", tmp})
	orphanPod := newID()
	must(t, os.MkdirAll(filepath.Join(e.state, "pods", orphanPod, "ns"), 0o700))
	wants = append(wants, want{"pod", "orphan-dir", orphanPod})
	lost := newID()
	e.podRecord(lost, "ready", true)
	must(t, os.RemoveAll(filepath.Join(e.state, "pods", lost)))
	wants = append(wants, want{"pod", "ready-without-state", lost})

	// Containers: an unreadable record, a dir without one, a bundle
	// without one.
	badCtr := newID()
	e.containerRecord(badCtr, "", "running", nil)
	must(t, os.WriteFile(filepath.Join(e.root, "containers", badCtr, "record.json"), []byte(`{"id":`), 0o600))
	must(t, os.MkdirAll(filepath.Join(e.root, "containers", badCtr, "upper"), 0o700))
	wants = append(wants, want{"container", "corrupt-record", badCtr}, want{"container", "orphan-bundle", badCtr})
	noRec := newID()
	must(t, os.MkdirAll(filepath.Join(e.root, "containers", noRec, "upper"), 0o700))
	wants = append(wants, want{"container", "no-record", noRec})
	bundle := newID()
	must(t, os.MkdirAll(filepath.Join(e.state, "containers", bundle, "rootfs"), 0o700))
	wants = append(wants, want{"container", "orphan-bundle", bundle})

	// Images and layers: a record whose layer is gone, an undecodable
	// record, a layer nobody holds, a broken entry, a temp leftover.
	gone := digest.FromString("never-pulled")
	lonely := e.layer(9)
	missing := e.image("example.test/gone:1", []digest.Digest{lonely, gone})
	wants = append(wants, want{"image", "missing-layer", missing.String()}, want{"layer", "unreferenced", lonely.String()})
	e.imagesDB(func(b *bolt.Bucket) error { return b.Put([]byte("sha256:garbage"), []byte("{")) })
	wants = append(wants, want{"image", "corrupt-record", "sha256:garbage"})
	must(t, os.MkdirAll(filepath.Join(e.root, "layers", "not-a-layer"), 0o700))
	must(t, os.MkdirAll(filepath.Join(e.root, "layers", "tmp", "unpack-1", "diff"), 0o700))
	wants = append(wants, want{"layer", "broken", "not-a-layer"}, want{"layer", "temp", filepath.Join("tmp", "unpack-1")})

	// A lease naming a pod without a record.
	leaked := e.lease("10.99.0.77", newID())
	wants = append(wants, want{"ip", "leaked", testNetwork + "/10.99.0.77"})

	// The runtime: a container no record names, with conmon state.
	h := e.cfg.Handlers[0]
	orphanCtr := newID()
	must(t, os.MkdirAll(filepath.Join(h.RuntimeRoot, orphanCtr), 0o700))
	must(t, os.MkdirAll(filepath.Join(h.StateDir, "ctr", orphanCtr), 0o700))
	must(t, os.MkdirAll(filepath.Join(h.StateDir, "exits"), 0o700))
	must(t, os.WriteFile(filepath.Join(h.StateDir, "exits", orphanCtr), []byte("0"), 0o600))
	wants = append(wants, want{"runtime", "orphan", "fake/" + orphanCtr})
	staleLink := filepath.Join(h.StateDir, "attach", "0123456789abcdef")
	must(t, os.MkdirAll(filepath.Dir(staleLink), 0o700))
	must(t, os.Symlink("/gone/bundle", staleLink))
	wants = append(wants, want{"runtime", "stale-attach-link", staleLink})

	// Processes working for this state dir on IDs without a record.
	conmon := e.helperProcess("conmon", "-c", newID(), "--exit-dir", filepath.Join(h.StateDir, "exits"), "-b", "/nowhere")
	runc := e.helperProcess("runc", "--root", h.RuntimeRoot, "start", newID())
	wants = append(wants, want{"process", "orphan-conmon", itoa(conmon.Process.Pid)}, want{"process", "orphan-runtime", itoa(runc.Process.Pid)})
	// Somebody else's conmon (another state dir) is none of our business.
	other := e.helperProcess("conmon", "-c", newID(), "--exit-dir", "/run/other/exits", "-b", "/run/other/b")

	rep := e.run(false)
	if rep.Clean() {
		t.Fatalf("damage not found:\n%s", dump(rep))
	}
	// Unreadable records may hold any layer: the unreferenced one shows
	// up once they are set aside, within the same repair.
	later := want{"layer", "unreferenced", lonely.String()}
	wants = slices.DeleteFunc(wants, func(w want) bool { return w == later })
	for _, w := range wants {
		if !hasFinding(rep.Findings, w) {
			t.Errorf("missing finding %+v", w)
		}
	}
	for _, f := range rep.Findings {
		if f.Object == itoa(other.Process.Pid) {
			t.Errorf("another state dir's process reported: %+v", f)
		}
		if !f.Repairable() {
			t.Errorf("finding without a repair: %+v", f)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", dump(rep))
	}

	rep = e.run(true)
	for _, f := range rep.Findings {
		if f.Result != "repaired" {
			t.Errorf("not repaired: %+v", f)
		}
	}
	if !hasFinding(rep.Findings, later) {
		t.Errorf("the repair did not take the layer the set-aside records left:\n%s", dump(rep))
	}
	if !rep.Clean() {
		t.Errorf("left after repair:\n%s", dump(rep))
	}
	if rep = e.run(false); !rep.Clean() {
		t.Errorf("a second check still finds:\n%s", dump(rep))
	}
	for _, p := range survivors {
		if !present(p) {
			t.Errorf("repair removed %s, which a valid record names", p)
		}
	}
	for _, p := range []string{leaked, tmp, filepath.Join(e.state, "pods", orphanPod), filepath.Join(e.root, "containers", noRec),
		filepath.Join(e.root, "layers", lonely.Encoded()), filepath.Join(h.RuntimeRoot, orphanCtr), filepath.Join(h.StateDir, "ctr", orphanCtr), staleLink} {
		if present(p) {
			t.Errorf("%s is still there", p)
		}
	}
	// Unreadable records are set aside, not deleted.
	for _, p := range []string{filepath.Join(e.root, "pods", badPod+".json.corrupt"),
		filepath.Join(e.root, "containers", badCtr, "record.json.corrupt"), filepath.Join(e.root, "containers", badCtr, "upper")} {
		if !present(p) {
			t.Errorf("%s was not kept", p)
		}
	}
	if rec, _ := os.ReadFile(filepath.Join(e.root, "pods", lost+".json")); !strings.Contains(string(rec), `"state":"notready"`) {
		t.Errorf("the READY pod without state is not NOTREADY: %s", rec)
	}
	if !dead(conmon.Process.Pid) || !dead(runc.Process.Pid) {
		t.Error("the orphan conmon or runc still runs")
	}
	if !processAlive(other.Process.Pid) {
		t.Error("another state dir's conmon was killed")
	}
}

// A damaged images.db is set aside; meanwhile no layer counts as
// unreferenced, since the records that would hold them cannot be read.
func TestCorruptImageDB(t *testing.T) {
	e := newEnv(t)
	e.valid()
	db := filepath.Join(e.root, "images", image.DBName)
	must(t, os.WriteFile(db, bytes.Repeat([]byte{0xff}, 8192), 0o600))
	rep := e.run(false)
	if !hasFinding(rep.Findings, want{"image", "corrupt-db", db}) || len(rep.Findings) != 1 {
		t.Fatalf("want only the corrupt database:\n%s", dump(rep))
	}
	rep = e.run(true)
	if rep.Findings[0].Result != "repaired" || !present(db+image.CorruptSuffix) {
		t.Fatalf("not set aside:\n%s", dump(rep))
	}
	// Then the image's own layer (l3) is held by nobody: the daemon would
	// prune it, and the repair's next round does.
	if !hasFinding(rep.Findings, want{"layer", "unreferenced", ""}) || !rep.Clean() {
		t.Errorf("after the repair:\n%s", dump(rep))
	}
}

// State of a handler the check cannot run is reported, and left alone.
func TestUnknownHandler(t *testing.T) {
	e := newEnv(t)
	e.valid()
	must(t, os.MkdirAll(filepath.Join(e.state, "runtime", "kata", newID()), 0o700))
	must(t, os.MkdirAll(filepath.Join(e.state, "oci", "empty", "ctr"), 0o700))
	rep := e.run(true)
	if len(rep.Findings) != 1 || !hasFinding(rep.Findings, want{"runtime", "unknown-handler", "kata"}) || rep.Clean() {
		t.Fatalf("want the kata state, unrepaired:\n%s", dump(rep))
	}
}

func TestRefusesWhileDaemonRuns(t *testing.T) {
	e := newEnv(t)
	// flock conflicts between open file descriptions, even in one process:
	// this one stands in for a daemon's, with its pid in the file.
	for _, dir := range []string{e.root, e.state} {
		f, err := os.OpenFile(filepath.Join(dir, "cradle.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		must(t, err)
		must(t, unix.Flock(int(f.Fd()), unix.LOCK_EX))
		f.WriteString("4242\n")
		_, err = Run(t.Context(), e.cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), "pid 4242") {
			t.Errorf("Run with %s locked: %v", dir, err)
		}
		f.Close()
	}
	if _, err := Run(t.Context(), e.cfg, Options{}); err != nil {
		t.Errorf("Run once the locks are free: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func processAlive(pid int) bool { return unix.Kill(pid, 0) == nil }
