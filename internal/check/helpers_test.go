package check

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
)

// helperEnv makes the test binary, started again with it set, stand in for
// a process (conmon, runc) under whatever argv the test gives it.
const helperEnv = "CRADLE_CHECK_HELPER_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		select {} // killed by the repair under test, or by the test's cleanup
	}
	os.Exit(m.Run())
}

// env is one test's root and state, a fake runtime and a CNI network whose
// host-local leases live in the test's own dir.
type env struct {
	t           *testing.T
	root, state string
	ipamDir     string // <dataDir>/<network>
	cfg         Config
}

const testNetwork = "checknet"

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, root: filepath.Join(base, "root"), state: filepath.Join(base, "state")}
	for _, d := range []string{e.root, e.state, filepath.Join(base, "cni"), filepath.Join(base, "bin")} {
		must(t, os.MkdirAll(d, 0o755))
	}
	dataDir := filepath.Join(base, "ipam")
	e.ipamDir = filepath.Join(dataDir, testNetwork)
	must(t, os.MkdirAll(e.ipamDir, 0o755))
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":"none0",
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]],"dataDir":%q}}]}`, testNetwork, dataDir)
	must(t, os.WriteFile(filepath.Join(base, "cni", "10-check.conflist"), []byte(conf), 0o644))
	network, err := cni.New(filepath.Join(base, "cni"), []string{filepath.Join(base, "bin")}, filepath.Join(e.root, "cni-cache"))
	must(t, err)
	e.cfg = Config{Root: e.root, State: e.state, CNI: network, ConmonPath: "/usr/bin/conmon",
		Handlers: []Handler{{Name: "fake", RuntimePath: fakeRuntime(t, base), RuntimeRoot: filepath.Join(e.state, "runtime", "fake"),
			StateDir: filepath.Join(e.state, "oci", "fake")}}}
	return e
}

// fakeRuntime is a runc stand-in: a container is a directory under --root.
func fakeRuntime(t *testing.T, dir string) string {
	path := filepath.Join(dir, "fakerunc")
	script := `#!/bin/sh
root=$2; cmd=$3; shift 3
case $cmd in
list)
	printf '['; sep=''
	for d in "$root"/*/; do
		[ -d "$d" ] || continue
		printf '%s{"id":"%s","pid":0,"status":"stopped","bundle":"/none"}' "$sep" "$(basename "$d")"; sep=','
	done
	printf ']\n';;
delete)
	[ "$1" = --force ] && shift
	[ -d "$root/$1" ] || { echo "container does not exist" >&2; exit 1; }
	rm -rf "$root/$1";;
esac
`
	must(t, os.WriteFile(path, []byte(script), 0o755))
	return path
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// podRecord writes a pod record as internal/sandbox does. A READY pod on
// the host's namespaces has nothing to pin, so it needs no root.
func (e *env) podRecord(id, state string, hostNS bool) {
	e.t.Helper()
	mode := runtimeapi.NamespaceMode_POD
	if hostNS {
		mode = runtimeapi.NamespaceMode_NODE
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p" + id[:6], Namespace: "ns", Uid: "u" + id[:6]},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: mode, Ipc: mode, Pid: runtimeapi.NamespaceMode_CONTAINER}}},
	}
	raw, err := protojson.Marshal(cfg)
	must(e.t, err)
	rec, err := json.Marshal(map[string]any{"version": 1, "id": id, "name": "k8s_POD_p" + id[:6], "config": json.RawMessage(raw),
		"digest": "x", "handler": "fake", "createdAt": time.Now(), "state": state})
	must(e.t, err)
	must(e.t, os.MkdirAll(filepath.Join(e.root, "pods"), 0o700))
	must(e.t, os.WriteFile(filepath.Join(e.root, "pods", id+".json"), rec, 0o600))
	must(e.t, os.MkdirAll(filepath.Join(e.state, "pods", id), 0o700))
}

// containerRecord writes a container record as internal/container does.
func (e *env) containerRecord(id, podID, state string, chain []digest.Digest) {
	e.t.Helper()
	cfg, err := proto.Marshal(&runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}})
	must(e.t, err)
	rec, err := json.Marshal(map[string]any{"id": id, "sandboxID": podID, "name": "k8s_c", "handler": "fake", "state": state,
		"config": cfg, "configHash": "x", "imageID": "sha256:" + strings.Repeat("a", 64), "chainIDs": chain, "createdAt": time.Now()})
	must(e.t, err)
	dir := filepath.Join(e.root, "containers", id)
	must(e.t, os.MkdirAll(dir, 0o700))
	must(e.t, os.WriteFile(filepath.Join(dir, "record.json"), rec, 0o600))
	must(e.t, os.MkdirAll(filepath.Join(e.state, "containers", id), 0o700))
}

// layer commits a layer the way internal/layer lays it out.
func (e *env) layer(n int) digest.Digest {
	e.t.Helper()
	chain := digest.FromString(fmt.Sprintf("chain-%d-%s", n, e.t.Name()))
	dir := filepath.Join(e.root, "layers", chain.Encoded())
	must(e.t, os.MkdirAll(filepath.Join(dir, "diff"), 0o755))
	info, err := json.Marshal(layer.Info{ChainID: chain, DiffID: digest.FromString(fmt.Sprint("diff", n))})
	must(e.t, err)
	must(e.t, os.WriteFile(filepath.Join(dir, "layer.json"), info, 0o644))
	return chain
}

// image writes an image record into images.db as internal/image does.
func (e *env) image(name string, chain []digest.Digest) digest.Digest {
	e.t.Helper()
	img := image.Image{ID: digest.FromString(name), RepoTags: []string{name}, ChainIDs: chain, PulledAt: time.Now()}
	v, err := json.Marshal(img)
	must(e.t, err)
	e.imagesDB(func(b *bolt.Bucket) error { return b.Put([]byte(img.ID.String()), v) })
	return img.ID
}

func (e *env) imagesDB(fn func(*bolt.Bucket) error) {
	e.t.Helper()
	dir := filepath.Join(e.root, "images")
	must(e.t, os.MkdirAll(dir, 0o700))
	db, err := bolt.Open(filepath.Join(dir, image.DBName), 0o600, &bolt.Options{Timeout: time.Second})
	must(e.t, err)
	defer db.Close()
	must(e.t, db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		if err := meta.Put([]byte("version"), []byte("1")); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists([]byte("images"))
		if err != nil {
			return err
		}
		return fn(b)
	}))
}

// lease writes a host-local lease naming id.
func (e *env) lease(ip, id string) string {
	e.t.Helper()
	p := filepath.Join(e.ipamDir, ip)
	must(e.t, os.WriteFile(p, []byte(id+"\r\neth0"), 0o644))
	return p
}

// helperProcess starts the test binary under argv, as a stand-in process.
func (e *env) helperProcess(argv ...string) *exec.Cmd {
	e.t.Helper()
	exe, err := os.Executable()
	must(e.t, err)
	cmd := &exec.Cmd{Path: exe, Args: argv, Env: append(os.Environ(), helperEnv+"=1")}
	must(e.t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	e.t.Cleanup(func() { cmd.Process.Kill(); <-done })
	// /proc shows the argv once exec is done: poll, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if p, err := readProc("/proc", cmd.Process.Pid); err == nil && slices.Equal(p.args, argv) {
			return cmd
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("helper process %v did not start", argv)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) run(repair bool) *Report {
	e.t.Helper()
	rep, err := Run(context.Background(), e.cfg, Options{Repair: repair})
	must(e.t, err)
	if len(rep.Incomplete) > 0 {
		e.t.Fatalf("incomplete check: %v", rep.Incomplete)
	}
	return rep
}

// want is one finding a test expects, by kind, problem and object.
type want struct{ kind, problem, object string }

func hasFinding(fs []Finding, w want) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool {
		return f.Kind == w.kind && f.Problem == w.problem && (w.object == "" || f.Object == w.object)
	})
}

func dump(r *Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

func present(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
