package integration

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rawImageClient talks to the daemon without cri-client, which cannot send
// a nil ImageSpec (it dereferences it to log an error).
func rawImageClient(t *testing.T, d *daemon) runtimeapi.ImageServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewImageServiceClient(conn)
}

// Bad image requests answer InvalidArgument, never a panic (Internal) or a
// nil image that would hide the mistake, and change nothing.
func TestImageRPCsRefuseBadInput(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	c := rawImageClient(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, tc := range []struct {
		name string
		spec *runtimeapi.ImageSpec
	}{
		{"nil image spec", nil},
		{"empty image", &runtimeapi.ImageSpec{}},
		{"unparsable reference", &runtimeapi.ImageSpec{Image: "UPPER/Case::x"}},
		{"reference with spaces", &runtimeapi.ImageSpec{Image: "a b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := map[string]func() error{
				"ImageStatus": func() error {
					_, err := c.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: tc.spec, Verbose: true})
					return err
				},
				"RemoveImage": func() error {
					_, err := c.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: tc.spec})
					return err
				},
				"PullImage": func() error {
					_, err := c.PullImage(ctx, &runtimeapi.PullImageRequest{Image: tc.spec})
					return err
				},
			}
			if tc.spec.GetImage() != "" {
				// An empty filter means "no filter"; a bad one is a mistake.
				calls["ListImages"] = func() error {
					_, err := c.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: tc.spec}})
					return err
				}
			}
			for name, call := range calls {
				if err := call(); status.Code(err) != codes.InvalidArgument {
					t.Errorf("%s: err = %v, want InvalidArgument", name, err)
				}
			}
		})
	}
	// A nil filter and a filter with an empty image list everything.
	for _, f := range []*runtimeapi.ImageFilter{nil, {}, {Image: &runtimeapi.ImageSpec{}}} {
		if _, err := c.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: f}); err != nil {
			t.Errorf("ListImages(filter %v): %v", f, err)
		}
	}
	if dirs := d.layerDirs(); len(dirs) != 0 {
		t.Errorf("bad requests left layers: %v", dirs)
	}
}

// RemoveImage by image ID or by repo digest removes the image with every
// tag, and only that image; it is idempotent in every form. ImageFsInfo
// follows the layers coming and going.
func TestRemoveImageByIDAndDigest(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img, err := testkit.BusyboxImage(testkit.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := testkit.BusyboxImage(testkit.ImageConfig{User: "7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"rm/busybox:a", "rm/busybox:b"} {
		reg.MustPush(t, tag, img)
	}
	reg.MustPush(t, "rm/other:1", other)
	configDigest, _ := img.ConfigName()
	manifestDigest, _ := img.Digest()
	tags := []string{reg.Ref("rm/busybox:a"), reg.Ref("rm/busybox:b")}
	repoDigest := reg.Host + "/rm/busybox@" + manifestDigest.String()

	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	fsUsed := func() (bytes, inodes uint64) {
		t.Helper()
		fs, err := d.Images.ImageFsInfo(ctx)
		if err != nil || len(fs.GetImageFilesystems()) != 1 {
			t.Fatalf("ImageFsInfo = %v, %v", fs, err)
		}
		u := fs.GetImageFilesystems()[0]
		if u.GetFsId().GetMountpoint() != d.root || u.GetTimestamp() == 0 {
			t.Errorf("image filesystem = %v", u)
		}
		// One disk holds both: the same mountpoint, or kubelet takes the
		// container filesystem for a split disk of its own.
		if cf := fs.GetContainerFilesystems(); len(cf) != 1 || cf[0].GetFsId().GetMountpoint() != d.root {
			t.Errorf("container filesystem = %v, want one on %s", cf, d.root)
		}
		return u.GetUsedBytes().GetValue(), u.GetInodesUsed().GetValue()
	}
	emptyBytes, emptyInodes := fsUsed()

	pull := func() {
		t.Helper()
		for _, ref := range append(slices.Clone(tags), reg.Ref("rm/other:1")) {
			if _, err := d.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		st, err := d.Images.ImageStatus(ctx, spec(tags[0]), false)
		if err != nil || st.GetImage().GetId() != configDigest.String() || len(st.GetImage().GetRepoTags()) != 2 {
			t.Fatalf("ImageStatus after pull = %v, %v", st.GetImage(), err)
		}
	}
	gone := func(how string) {
		t.Helper()
		for _, ref := range append(slices.Clone(tags), repoDigest, configDigest.String()) {
			st, err := d.Images.ImageStatus(ctx, spec(ref), false)
			if err != nil || st.GetImage() != nil {
				t.Errorf("after RemoveImage(%s): ImageStatus(%s) = %v, %v; want nil image, no error", how, ref, st.GetImage(), err)
			}
		}
		list, err := d.Images.ListImages(ctx, nil)
		if err != nil || len(list) != 1 || list[0].GetRepoTags()[0] != reg.Ref("rm/other:1") {
			t.Errorf("after RemoveImage(%s): ListImages = %v, %v; want only the other image", how, list, err)
		}
		// Every form is idempotent.
		for _, ref := range []string{tags[1], repoDigest, configDigest.String()} {
			if err := d.Images.RemoveImage(ctx, spec(ref)); err != nil {
				t.Errorf("RemoveImage(%s) of an absent image: %v", ref, err)
			}
		}
	}

	pull()
	pulledBytes, pulledInodes := fsUsed()
	if pulledBytes < emptyBytes+500_000 || pulledInodes <= emptyInodes {
		t.Errorf("ImageFsInfo after pulling busybox: %d bytes, %d inodes; before: %d, %d", pulledBytes, pulledInodes, emptyBytes, emptyInodes)
	}

	if err := d.Images.RemoveImage(ctx, spec(configDigest.String())); err != nil {
		t.Fatalf("RemoveImage by ID: %v", err)
	}
	gone("ID")

	pull()
	if err := d.Images.RemoveImage(ctx, spec(repoDigest)); err != nil {
		t.Fatalf("RemoveImage by digest: %v", err)
	}
	gone("digest")

	// The verbose status of what is left carries the image's details.
	st, err := d.Images.ImageStatus(ctx, spec(reg.Ref("rm/other:1")), true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ChainIDs  []string `json:"chainIDs"`
		ImageSpec struct {
			Config struct{ User string } `json:"config"`
		} `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || len(info.ChainIDs) != 1 || info.ImageSpec.Config.User != "7" {
		t.Errorf("verbose info = %v (%v)", st.GetInfo(), err)
	}
	if st.GetImage().GetUid().GetValue() != 7 {
		t.Errorf("uid = %v", st.GetImage().GetUid())
	}
	if st, _ := d.Images.ImageStatus(ctx, spec(reg.Ref("rm/other:1")), false); len(st.GetInfo()) != 0 {
		t.Errorf("non-verbose status has info: %v", st.GetInfo())
	}

	if err := d.Images.RemoveImage(ctx, spec(reg.Ref("rm/other:1"))); err != nil {
		t.Fatal(err)
	}
	if dirs := d.layerDirs(); len(dirs) != 0 {
		t.Errorf("layers left with no image: %v", dirs)
	}
	if b, i := fsUsed(); b >= pulledBytes || i >= pulledInodes {
		t.Errorf("ImageFsInfo after removing every image: %d bytes, %d inodes; with busybox: %d, %d", b, i, pulledBytes, pulledInodes)
	}
}
