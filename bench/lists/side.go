package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// side is one runtime, the pods it holds and kubelet's two clients to it:
// the plain one and the one in streaming mode (CRIListStreaming).
type side struct {
	name   string
	d      *benchkit.Daemon
	stream internalapi.RuntimeService
	image  string
	logDir string

	pods       []pod
	containers int // pods' own included
	seq        int

	debug *http.Client // cradle's debug endpoint; nil for containerd
}

type pod struct {
	id, name string
	cfg      *runtimeapi.PodSandboxConfig
	ctrs     int
}

func newSide(ctx context.Context, name string, d *benchkit.Daemon, image, logDir, debugSock string) (*side, error) {
	stream, err := remote.NewRemoteRuntimeService(ctx, "unix://"+d.Socket, criTimeout, nil, true)
	if err != nil {
		return nil, fmt.Errorf("%s: streaming client: %w", name, err)
	}
	s := &side{name: name, d: d, stream: stream, image: image, logDir: logDir}
	if debugSock != "" {
		s.debug = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", debugSock)
		}}}
	}
	return s, nil
}

func (s *side) close() {
	_ = s.stream.Close(context.Background())
	if s.debug != nil {
		s.debug.CloseIdleConnections()
	}
}

// grow adds pods (each with one running container) up to pods, then
// created containers spread over the pods up to containers, n at a time.
func (s *side) grow(ctx context.Context, pods, containers, n int) error {
	var mu sync.Mutex
	var first error
	run := func(jobs int, job func() error) {
		sem := make(chan struct{}, n)
		var wg sync.WaitGroup
		for range jobs {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := job(); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	run(pods-len(s.pods), func() error {
		mu.Lock()
		s.seq++
		name := fmt.Sprintf("%s-%03d", s.name, s.seq)
		mu.Unlock()
		p, err := s.runPod(ctx, name)
		if err != nil {
			return err
		}
		mu.Lock()
		s.pods = append(s.pods, p)
		s.containers++
		mu.Unlock()
		return nil
	})
	if first != nil {
		return first
	}
	// Created containers go round the pods; each gets a name of its own.
	next := s.containers
	run(containers-s.containers, func() error {
		mu.Lock()
		i := next
		next++
		p := &s.pods[i%len(s.pods)]
		name := fmt.Sprintf("extra-%d", i)
		mu.Unlock()
		cc := benchkit.WorkloadContainer(s.image)
		cc.Metadata.Name = name
		cc.LogPath = name + ".log"
		cc.Labels = map[string]string{"io.kubernetes.container.name": name}
		if _, err := s.d.Runtime.CreateContainer(ctx, p.id, cc, p.cfg); err != nil {
			return s.d.Explain(fmt.Errorf("%s CreateContainer %s in %s: %w", s.name, name, p.name, err))
		}
		mu.Lock()
		p.ctrs++
		s.containers++
		mu.Unlock()
		return nil
	})
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// runPod runs a pod and its one container, as bench/pods does.
func (s *side) runPod(ctx context.Context, name string) (pod, error) {
	logDir := filepath.Join(s.logDir, name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return pod{}, err
	}
	cfg := benchkit.PodConfig(name, logDir, cgroupTop(s.name)+"/"+name)
	id, err := s.d.Runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		return pod{}, s.d.Explain(fmt.Errorf("%s RunPodSandbox %s: %w", s.name, name, err))
	}
	cid, err := s.d.Runtime.CreateContainer(ctx, id, benchkit.WorkloadContainer(s.image), cfg)
	if err != nil {
		return pod{}, s.d.Explain(fmt.Errorf("%s CreateContainer in %s: %w", s.name, name, err))
	}
	if err := s.d.Runtime.StartContainer(ctx, cid); err != nil {
		return pod{}, s.d.Explain(fmt.Errorf("%s StartContainer in %s: %w", s.name, name, err))
	}
	return pod{id: id, name: name, cfg: cfg, ctrs: 1}, nil
}

// startProfile takes a CPU profile of cradle for the next d; the returned
// function waits for it and writes it to path. (pprof writes a profile
// only at its end: the window is fixed, not cut short.)
func (s *side) startProfile(ctx context.Context, d time.Duration, path string) func() error {
	if s.debug == nil {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		url := fmt.Sprintf("http://cradle/debug/pprof/profile?seconds=%d", int(d.Seconds()))
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := s.debug.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("profile: %s %v", resp.Status, err)
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			done <- err
			return
		}
		done <- os.WriteFile(path, b, 0o644)
	}()
	return func() error { return <-done }
}
