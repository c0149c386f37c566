package cri

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cradle-runtime/cradle/internal/version"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Version reports the runtime name and the CRI version it speaks.
func (s *Server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0",
		RuntimeName:       version.RuntimeName,
		RuntimeVersion:    version.Version,
		RuntimeApiVersion: version.CRIVersion,
	}, nil
}

// Status reports RuntimeReady and NetworkReady; kubelet polls it every few
// seconds, so it reads only cheap local state.
func (s *Server) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if conf, err := firstCNIConfig(s.cfg.CNI.ConfDir); err != nil || conf == "" {
		netReady.Status = false
		netReady.Reason = "NetworkPluginNotReady"
		netReady.Message = "no CNI network config in " + s.cfg.CNI.ConfDir
		if err != nil {
			netReady.Message += ": " + err.Error()
		}
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			netReady,
		}},
		RuntimeHandlers: s.runtimeHandlers(),
		Features:        &runtimeapi.RuntimeFeatures{},
	}
	if req.GetVerbose() {
		cfg, err := json.Marshal(s.cfg.Config)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"config": string(cfg)}
	}
	return resp, nil
}

// runtimeHandlers lists the configured handlers; the unnamed entry stands for
// the default handler, as kubelet expects. Features are reported false until
// the issues that honour them land: advertising what we cannot do would make
// kubelet schedule pods that then fail.
func (s *Server) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	names := make([]string, 0, len(s.cfg.Runtime.Handlers))
	for name := range s.cfg.Runtime.Handlers {
		names = append(names, name)
	}
	sort.Strings(names)
	handlers := []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}}}
	for _, name := range names {
		handlers = append(handlers, &runtimeapi.RuntimeHandler{Name: name, Features: &runtimeapi.RuntimeHandlerFeatures{}})
	}
	return handlers
}

// RuntimeConfig reports the cgroup driver; kubelet ≥ 1.36 takes it from here only.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.cfg.Runtime.CgroupDriver == "systemd" {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// firstCNIConfig returns the network config libcni would load: the first
// .conf, .conflist or .json file of dir in lexical order.
func firstCNIConfig(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() {
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".conf", ".conflist", ".json":
			return filepath.Join(dir, e.Name()), nil
		}
	}
	return "", nil
}
