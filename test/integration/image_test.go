package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func spec(ref string) *runtimeapi.ImageSpec { return &runtimeapi.ImageSpec{Image: ref} }

func TestImageServiceLifecycleThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img, err := testkit.BusyboxImage(testkit.ImageConfig{User: "1000", Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("team/busybox:1.0", img); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("team/busybox:stable", img); err != nil {
		t.Fatal(err)
	}
	configDigest, _ := img.ConfigName()
	manifestDigest, _ := img.Digest()

	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	ref := reg.Ref("team/busybox:1.0")

	// Absent: nil image, not an error.
	st, err := d.Images.ImageStatus(ctx, spec(ref), false)
	if err != nil || st.GetImage() != nil {
		t.Fatalf("ImageStatus of an absent image = %v, %v", st, err)
	}

	imageRef, err := d.Images.PullImage(ctx, spec(ref), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if imageRef != configDigest.String() {
		t.Fatalf("PullImage image_ref = %s, want the config digest %s", imageRef, configDigest)
	}
	if _, err := d.Images.PullImage(ctx, spec(reg.Ref("team/busybox:stable")), nil, nil); err != nil {
		t.Fatal(err)
	}

	list, err := d.Images.ListImages(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("ListImages = %d images, want 1 (two tags of one image)", len(list))
	}
	got := list[0]
	if got.Id != imageRef {
		t.Errorf("ListImages id %s != PullImage image_ref %s", got.Id, imageRef)
	}
	wantTags := []string{reg.Ref("team/busybox:1.0"), reg.Ref("team/busybox:stable")}
	if strings.Join(got.RepoTags, ",") != strings.Join(wantTags, ",") {
		t.Errorf("RepoTags = %v, want %v", got.RepoTags, wantTags)
	}
	wantDigest := reg.Host + "/team/busybox@" + manifestDigest.String()
	if len(got.RepoDigests) != 1 || got.RepoDigests[0] != wantDigest {
		t.Errorf("RepoDigests = %v, want [%s]", got.RepoDigests, wantDigest)
	}
	if got.Uid.GetValue() != 1000 || got.Size == 0 {
		t.Errorf("uid=%v size=%d", got.Uid, got.Size)
	}

	// Status by tag, by ID, by digest: the same image; verbose info is JSON.
	for _, r := range []string{ref, imageRef, wantDigest} {
		st, err := d.Images.ImageStatus(ctx, spec(r), true)
		if err != nil || st.GetImage().GetId() != imageRef {
			t.Fatalf("ImageStatus(%s) = %v, %v", r, st.GetImage(), err)
		}
		var info map[string]any
		if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info["imageSpec"] == nil {
			t.Errorf("verbose info of %s: %v %v", r, st.GetInfo(), err)
		}
	}

	// Filtered listing.
	list, err = d.Images.ListImages(ctx, &runtimeapi.ImageFilter{Image: spec(reg.Ref("team/busybox:stable"))})
	if err != nil || len(list) != 1 || list[0].Id != imageRef {
		t.Fatalf("filtered ListImages = %v, %v", list, err)
	}
	list, err = d.Images.ListImages(ctx, &runtimeapi.ImageFilter{Image: spec(reg.Ref("team/other:1"))})
	if err != nil || len(list) != 0 {
		t.Fatalf("filter on an absent image = %v, %v", list, err)
	}

	fs, err := d.Images.ImageFsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.ImageFilesystems) != 1 || fs.ImageFilesystems[0].UsedBytes.GetValue() < 500_000 ||
		fs.ImageFilesystems[0].InodesUsed.GetValue() == 0 || len(fs.ContainerFilesystems) != 1 {
		t.Errorf("ImageFsInfo = %v (busybox alone is ~1 MB)", fs)
	}

	// Removing by one tag removes the image with every tag, and its layers.
	if err := d.Images.RemoveImage(ctx, spec(ref)); err != nil {
		t.Fatal(err)
	}
	list, _ = d.Images.ListImages(ctx, nil)
	if len(list) != 0 {
		t.Fatalf("images after RemoveImage: %v", list)
	}
	if dirs := d.layerDirs(); len(dirs) != 0 {
		t.Errorf("layers left after RemoveImage: %v", dirs)
	}
	// Idempotent.
	if err := d.Images.RemoveImage(ctx, spec(ref)); err != nil {
		t.Fatalf("second RemoveImage: %v", err)
	}
}

func TestImagesSurviveRestartAndCrash(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img, err := testkit.BusyboxImage(testkit.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("keep/me:1", img); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	id, err := d.Images.PullImage(ctx, spec(reg.Ref("keep/me:1")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.stop()
	d = startDaemon(t, daemonOpts{dir: d.dir})
	st, err := d.Images.ImageStatus(ctx, spec(reg.Ref("keep/me:1")), false)
	if err != nil || st.GetImage().GetId() != id {
		t.Fatalf("after restart: %v %v", st, err)
	}
	d.kill()
	d = startDaemon(t, daemonOpts{dir: d.dir})
	st, err = d.Images.ImageStatus(ctx, spec(id), false)
	if err != nil || st.GetImage().GetId() != id {
		t.Fatalf("after crash: %v %v", st, err)
	}
}

func TestPullKilledMidwayLeavesNothingAfterRestart(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	base, err := testkit.BusyboxLayer(testkit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	big, err := testkit.RandomLayer(8<<20, 7, testkit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testkit.NewImage(testkit.ImageConfig{}, base, big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("crash/me:1", img); err != nil {
		t.Fatal(err)
	}
	bigDigest, _ := big.Digest()
	release := make(chan struct{})
	defer close(release)
	reg.SetFault(testkit.StallBlob(bigDigest.Hex, 1<<20, release))

	d := startDaemon(t, daemonOpts{})
	pullErr := make(chan error, 1)
	go func() {
		_, err := d.Images.PullImage(context.Background(), spec(reg.Ref("crash/me:1")), nil, nil)
		pullErr <- err
	}()
	// Wait until the stalled layer is being unpacked, then crash the daemon.
	// Crash with both kinds of leftover on disk: the busybox layer committed
	// (no image holds it yet) and the big one half unpacked under tmp/.
	eventually(t, 30*time.Second, "a committed layer and an unpack in progress", func() bool {
		var committed, unpacking bool
		for _, dir := range d.layerDirs() {
			if strings.HasPrefix(dir, "tmp/") {
				unpacking = true
			} else {
				committed = true
			}
		}
		return reg.Requests(bigDigest.Hex) > 0 && committed && unpacking
	})
	d.kill()
	<-pullErr

	d = startDaemon(t, daemonOpts{dir: d.dir})
	list, err := d.Images.ListImages(context.Background(), nil)
	if err != nil || len(list) != 0 {
		t.Fatalf("images after a crash mid-pull: %v %v", list, err)
	}
	if dirs := d.layerDirs(); len(dirs) != 0 {
		t.Errorf("leftovers after restart: %v", dirs)
	}
}

func TestPullFailuresMapToCodesAndLeaveNothing(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	authReg := testkit.NewRegistry(t, testkit.WithBasicAuth("alice", "s3cret"))
	good, err := testkit.BusyboxImage(testkit.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("ok/img:1", good); err != nil {
		t.Fatal(err)
	}
	if _, err := authReg.Push("private/img:1", good); err != nil {
		t.Fatal(err)
	}
	corrupt, err := testkit.BusyboxImage(testkit.ImageConfig{Env: []string{"X=corrupt"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("bad/digest:1", corrupt); err != nil {
		t.Fatal(err)
	}
	layers, _ := corrupt.Layers()
	corruptDigest, _ := layers[0].Digest()
	for name, entries := range testkit.MaliciousLayers() {
		l, err := testkit.NewLayer(entries, testkit.Gzip)
		if err != nil {
			t.Fatal(err)
		}
		img, err := testkit.NewImage(testkit.ImageConfig{}, l)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Push("evil/"+name+":1", img); err != nil {
			t.Fatal(err)
		}
	}
	// An address nothing listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := l.Addr().String()
	l.Close()

	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	reg.SetFault(testkit.CorruptBlob(corruptDigest.Hex))

	cases := []struct {
		name string
		ref  string
		auth *runtimeapi.AuthConfig
		code codes.Code
	}{
		{"empty reference", "", nil, codes.InvalidArgument},
		{"malformed reference", "UPPER/Case::x", nil, codes.InvalidArgument},
		{"unknown tag", reg.Ref("ok/img:nope"), nil, codes.NotFound},
		{"unknown repository", reg.Ref("none/such:1"), nil, codes.NotFound},
		{"no credentials", authReg.Ref("private/img:1"), nil, codes.Unauthenticated},
		{"wrong password", authReg.Ref("private/img:1"), &runtimeapi.AuthConfig{Username: "alice", Password: "nope"}, codes.Unauthenticated},
		{"unreachable registry", deadAddr + "/x/y:1", nil, codes.Unavailable},
		{"corrupted layer", reg.Ref("bad/digest:1"), nil, codes.DataLoss},
	}
	for name := range testkit.MaliciousLayers() {
		cases = append(cases, struct {
			name string
			ref  string
			auth *runtimeapi.AuthConfig
			code codes.Code
		}{"malicious " + name, reg.Ref("evil/" + name + ":1"), nil, codes.InvalidArgument})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Images.PullImage(ctx, spec(tc.ref), tc.auth, nil)
			if status.Code(err) != tc.code {
				t.Fatalf("PullImage(%q) = %v, want code %v", tc.ref, err, tc.code)
			}
			if msg := status.Convert(err).Message(); len(msg) < 10 {
				t.Errorf("unhelpful message %q", msg)
			}
			list, _ := d.Images.ListImages(ctx, nil)
			if len(list) != 0 {
				t.Errorf("image recorded after a failed pull: %v", list)
			}
			if dirs := d.layerDirs(); len(dirs) != 0 {
				t.Errorf("left on disk after a failed pull: %v", dirs)
			}
		})
	}

	// The right credentials work, in each CRI form.
	for i, auth := range []*runtimeapi.AuthConfig{
		{Username: "alice", Password: "s3cret"},
		{Auth: "YWxpY2U6czNjcmV0"}, // alice:s3cret
	} {
		if _, err := d.Images.PullImage(ctx, spec(authReg.Ref("private/img:1")), auth, nil); err != nil {
			t.Errorf("auth form %d: %v", i, err)
		}
	}
}

func TestMirrorFromHostsToml(t *testing.T) {
	needRoot(t)
	mirror := testkit.NewRegistry(t)
	img, err := testkit.BusyboxImage(testkit.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.Push("library/busybox:latest", img); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, daemonOpts{})
	// docker.io is never contacted: the mirror is also the server, as in the critest harness.
	d.writeHostsToml("docker.io", fmt.Sprintf("server = %q\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", mirror.URL, mirror.URL))
	ctx := context.Background()
	id, err := d.Images.PullImage(ctx, spec("busybox"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Images.ImageStatus(ctx, spec("docker.io/library/busybox:latest"), false)
	if err != nil || st.GetImage().GetId() != id {
		t.Fatalf("ImageStatus = %v %v", st, err)
	}
	if tags := st.GetImage().GetRepoTags(); len(tags) != 1 || tags[0] != "docker.io/library/busybox:latest" {
		t.Errorf("RepoTags = %v", tags)
	}
}
