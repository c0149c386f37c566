package cri

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/image"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PullImage pulls an image and answers its ID (the config digest), which is
// also Image.id in every listing, as kubelet ≥ 1.36 requires.
func (s *Server) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("PullImage: image reference is empty")
	}
	if err := s.checkImageHandler("PullImage", req.GetImage()); err != nil {
		return nil, err
	}
	img, err := s.images.Pull(ctx, ref, authFromCRI(req.GetAuth()), nil)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PullImageResponse{ImageRef: img.ID.String()}, nil
}

func authFromCRI(a *runtimeapi.AuthConfig) *image.Auth {
	if a == nil {
		return nil
	}
	return &image.Auth{
		Username:      a.Username,
		Password:      a.Password,
		Auth:          a.Auth,
		ServerAddress: a.ServerAddress,
		IdentityToken: a.IdentityToken,
		RegistryToken: a.RegistryToken,
	}
}

// ListImages lists images, or the one image the filter names.
func (s *Server) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if err := s.checkImageHandler("ListImages", req.GetFilter().GetImage()); err != nil {
		return nil, err
	}
	imgs, err := s.images.List(req.GetFilter().GetImage().GetImage())
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ListImagesResponse{Images: make([]*runtimeapi.Image, 0, len(imgs))}
	for i := range imgs {
		resp.Images = append(resp.Images, withHandler(toCRIImage(&imgs[i]), req.GetFilter().GetImage()))
	}
	return resp, nil
}

// ImageStatus answers a nil image, not an error, when the image is absent:
// kubelet checks presence this way before every container create.
func (s *Server) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("ImageStatus: image reference is empty")
	}
	if err := s.checkImageHandler("ImageStatus", req.GetImage()); err != nil {
		return nil, err
	}
	img, ok, err := s.images.Get(ref)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	resp := &runtimeapi.ImageStatusResponse{Image: withHandler(toCRIImage(&img), req.GetImage())}
	if req.GetVerbose() {
		info, err := json.Marshal(verboseImageInfo{
			ChainIDs:          img.ChainIDs,
			ManifestDigest:    img.ManifestDigest.String(),
			ManifestMediaType: img.ManifestMediaType,
			PulledAt:          img.PulledAt,
			ImageSpec:         img.Config,
		})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

type verboseImageInfo struct {
	ChainIDs          any       `json:"chainIDs"`
	ManifestDigest    string    `json:"manifestDigest"`
	ManifestMediaType string    `json:"manifestMediaType"`
	PulledAt          time.Time `json:"pulledAt"`
	ImageSpec         any       `json:"imageSpec"`
}

// RemoveImage removes an image with all its tags; an absent image is success.
func (s *Server) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("RemoveImage: image reference is empty")
	}
	if err := s.checkImageHandler("RemoveImage", req.GetImage()); err != nil {
		return nil, err
	}
	if err := s.images.Remove(ref); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the image filesystem (layers and records) and the
// container filesystem (writable layers) kubelet's eviction manager watches.
func (s *Server) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	now := time.Now().UnixNano()
	bytes, inodes, err := s.images.FsUsage()
	if err != nil {
		return nil, err
	}
	ctrBytes, ctrInodes, err := s.containerFsUsage()
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ImageFsInfoResponse{
		ImageFilesystems: []*runtimeapi.FilesystemUsage{{
			Timestamp:  now,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.config().Root},
			UsedBytes:  &runtimeapi.UInt64Value{Value: bytes},
			InodesUsed: &runtimeapi.UInt64Value{Value: inodes},
		}},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{{
			Timestamp:  now,
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: s.containerFsMount()},
			UsedBytes:  &runtimeapi.UInt64Value{Value: ctrBytes},
			InodesUsed: &runtimeapi.UInt64Value{Value: ctrInodes},
		}},
	}, nil
}

// containerFsMountpoint names the filesystem of the writable layers. kubelet
// takes a mountpoint other than the image filesystem's for a split disk
// (KEP-4191) and then evicts and collects garbage for each on its own; the
// writable layers under <root>/containers share the image filesystem unless
// the operator mounted a disk there.
func (s *Server) containerFsMountpoint() string {
	dir := filepath.Join(s.config().Root, "containers")
	var root, ctrs unix.Stat_t
	if unix.Stat(s.config().Root, &root) != nil || unix.Stat(dir, &ctrs) != nil || root.Dev == ctrs.Dev {
		return s.config().Root
	}
	return dir
}

// containerFsUsage is what containers' writable layers use; zero in a
// daemon without containers.
func (s *Server) containerFsUsage() (bytes, inodes uint64, err error) {
	if s.containers == nil {
		return 0, 0, nil
	}
	return s.containers.FsUsage()
}

func toCRIImage(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID.String(),
		RepoTags:    nonNil(img.RepoTags),
		RepoDigests: nonNil(img.RepoDigests),
		Size:        uint64(img.Size),
		Spec:        &runtimeapi.ImageSpec{Image: img.ID.String()},
		Pinned:      img.Pinned,
	}
	// The image's user decides how kubelet checks runAsNonRoot: a numeric uid
	// goes in uid, a name in username.
	user := img.Config.Config.User
	if u, _, _ := strings.Cut(user, ":"); u != "" {
		if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = u
		}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
