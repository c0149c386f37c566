package cri

import (
	"context"
	"encoding/json"
	"errors"

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

// Keys of Status's verbose info: the configuration in force as JSON (the
// field names of config.Config) and the files it was read from (a JSON
// list).
const (
	InfoConfig      = "config"
	InfoConfigFiles = "configFiles"
)

// Status reports RuntimeReady and NetworkReady; kubelet polls it every few
// seconds, so it reads only cheap local state.
func (s *Server) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := s.networkReady(); err != nil {
		netReady.Status = false
		netReady.Reason = "NetworkPluginNotReady"
		netReady.Message = err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			netReady,
		}},
		RuntimeHandlers: s.runtimeHandlers(),
		// Supplemental groups policy (with ContainerStatus.user) and
		// Mount.mount_options are cradle's own code, whatever the handler.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true, MountOptions: true},
	}
	if req.GetVerbose() {
		// The configuration in force, reloads included: `cradle config`
		// shows it (InfoConfig).
		cfg := s.config()
		js, err := json.Marshal(cfg.Config)
		if err != nil {
			return nil, err
		}
		files, _ := json.Marshal(cfg.Files)
		resp.Info = map[string]string{InfoConfig: string(js), InfoConfigFiles: string(files)}
		if cidr := s.runtimeConfig.podCIDR(cfg.Root); cidr != "" {
			resp.Info["podCIDR"] = cidr
		}
		if s.nriStatus != nil {
			st := s.nriStatus()
			if st.Plugins == nil {
				st.Plugins = []string{}
			}
			data, err := json.Marshal(st)
			if err != nil {
				return nil, err
			}
			resp.Info["nri"] = string(data)
		}
	}
	return resp, nil
}

// runtimeHandlers lists the configured handlers; the unnamed entry stands for
// the default handler, as kubelet expects. Each feature comes from detection
// at start-up and is exactly what CreateContainer honours: advertising what
// we cannot do would make kubelet schedule pods that then fail.
func (s *Server) runtimeHandlers() []*runtimeapi.RuntimeHandler {
	handlers := []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: s.usernsFor(""), RecursiveReadOnlyMounts: s.rroFor("")}}}
	for _, name := range s.runtimeHandlerNames() {
		handlers = append(handlers, &runtimeapi.RuntimeHandler{Name: name, Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: s.usernsFor(name), RecursiveReadOnlyMounts: s.rroFor(name)}})
	}
	return handlers
}

// RuntimeConfig reports the cgroup driver; kubelet ≥ 1.36 takes it from here only.
func (s *Server) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	driver := runtimeapi.CgroupDriver_CGROUPFS
	if s.config().Runtime.CgroupDriver == "systemd" {
		driver = runtimeapi.CgroupDriver_SYSTEMD
	}
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

func (s *Server) networkReady() error {
	if s.network == nil {
		return errors.New("no pod network configured")
	}
	return s.network.Ready()
}
