package userns

import (
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func idm(c, h, l uint32) *runtimeapi.IDMapping {
	return &runtimeapi.IDMapping{ContainerId: c, HostId: h, Length: l}
}

func TestFromCRI(t *testing.T) {
	good := []*runtimeapi.IDMapping{idm(0, 1000, 100000)}
	for _, tc := range []struct {
		name string
		in   *runtimeapi.UserNamespace
		want *Options
	}{
		{"absent", nil, nil},
		{"node", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, nil},
		{"pod", &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: good,
			Gids: []*runtimeapi.IDMapping{idm(0, 2000, 65536)}},
			&Options{UID: Mapping{0, 1000, 100000}, GID: Mapping{0, 2000, 65536}}},
	} {
		got, err := FromCRI(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		if got != nil {
			back, err := FromCRI(got.ToCRI())
			if err != nil || *back != *got {
				t.Errorf("%s: round trip = %+v, %v", tc.name, back, err)
			}
		}
	}
}

func TestFromCRIRejects(t *testing.T) {
	pod := func(uid, gid *runtimeapi.IDMapping) *runtimeapi.UserNamespace {
		u := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Gids: []*runtimeapi.IDMapping{gid}}
		if uid != nil {
			u.Uids = []*runtimeapi.IDMapping{uid}
		}
		return u
	}
	ok := idm(0, 1000, 100000)
	for name, in := range map[string]*runtimeapi.UserNamespace{
		"container mode":    {Mode: runtimeapi.NamespaceMode_CONTAINER},
		"target mode":       {Mode: runtimeapi.NamespaceMode_TARGET},
		"unknown mode":      {Mode: 42},
		"node with maps":    {Mode: runtimeapi.NamespaceMode_NODE, Uids: []*runtimeapi.IDMapping{ok}},
		"no uid map":        pod(nil, ok),
		"two uid maps":      {Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{ok, idm(0, 2000, 1)}, Gids: []*runtimeapi.IDMapping{ok}},
		"two gid maps":      {Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{ok}, Gids: []*runtimeapi.IDMapping{ok, idm(0, 2000, 1)}},
		"0 unmapped":        pod(idm(1, 1000, 100000), ok),
		"gid 0 unmapped":    pod(ok, idm(1, 1000, 100000)),
		"empty range":       pod(idm(0, 1000, 0), ok),
		"host root mapped":  pod(idm(0, 0, 65536), ok),
		"overflowing range": pod(idm(0, 1<<32-10, 100), ok),
	} {
		_, err := FromCRI(in)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
}

func TestParseMap(t *testing.T) {
	got, err := ParseMap("         0       1000     100000\n  5 6 7\n")
	if err != nil || len(got) != 2 || got[0] != (Mapping{0, 1000, 100000}) || got[1] != (Mapping{5, 6, 7}) {
		t.Fatalf("ParseMap = %v, %v", got, err)
	}
	for _, bad := range []string{"0 1\n", "a b c\n", "0 1 99999999999\n"} {
		if _, err := ParseMap(bad); err == nil {
			t.Errorf("ParseMap(%q) succeeded", bad)
		}
	}
}
