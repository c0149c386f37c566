package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pullResult is one timed pull.
type pullResult struct {
	Time    time.Duration
	CPU     time.Duration // user+system of the daemon and its reaped children
	SelfCPU time.Duration // user+system of this process: registry and CRI client
	PeakRSS int64         // largest sampled RSS of the daemon and its children
	Disk    int64         // bytes the runtime stores for the image afterwards
}

// rssInterval is how often RSS is sampled during a pull.
const rssInterval = 20 * time.Millisecond

// cleanTimeout bounds the wait for a runtime to delete an image's content.
const cleanTimeout = 60 * time.Second

// timedPull makes sure d holds nothing of ref, flushes dirty pages, and
// times one CRI PullImage of ref.
func timedPull(ctx context.Context, d *daemon, ref string) (pullResult, error) {
	if err := removeAndWait(ctx, d, ref); err != nil {
		return pullResult{}, err
	}
	// Writeback of the previous pull (or removal) must not bill this one.
	unix.Sync()

	cpu0, err := processCPU(d.Pid())
	if err != nil {
		return pullResult{}, err
	}
	self0, err := processCPU(os.Getpid())
	if err != nil {
		return pullResult{}, err
	}
	stopSampling := sampleRSS(d.Pid(), rssInterval)
	start := time.Now()
	_, err = d.Images.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
	elapsed := time.Since(start)
	peak := stopSampling()
	if err != nil {
		return pullResult{}, fmt.Errorf("%s: pull %s: %w", d.Name, ref, err)
	}
	cpu1, err := processCPU(d.Pid())
	if err != nil {
		return pullResult{}, err
	}
	self1, err := processCPU(os.Getpid())
	if err != nil {
		return pullResult{}, err
	}

	// The pull must have produced the image, listed and on disk.
	st, err := d.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		return pullResult{}, fmt.Errorf("%s: image status after pull: %w", d.Name, err)
	}
	if st.GetImage() == nil {
		return pullResult{}, fmt.Errorf("%s: pull of %s succeeded but ImageStatus does not find it", d.Name, ref)
	}
	_, disk, err := d.storeUsage()
	if err != nil {
		return pullResult{}, err
	}
	if disk == 0 {
		return pullResult{}, fmt.Errorf("%s: pull of %s left nothing in %v", d.Name, ref, d.storeDirs)
	}
	return pullResult{Time: elapsed, CPU: cpu1 - cpu0, SelfCPU: self1 - self0, PeakRSS: peak, Disk: disk}, nil
}

// removeAndWait removes ref through CRI and waits until the runtime's store
// dirs are empty, so the next pull downloads and unpacks every layer.
func removeAndWait(ctx context.Context, d *daemon, ref string) error {
	if err := d.Images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
		return fmt.Errorf("%s: remove %s: %w", d.Name, ref, err)
	}
	st, err := d.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		return fmt.Errorf("%s: image status after remove: %w", d.Name, err)
	}
	if st.GetImage() != nil {
		return fmt.Errorf("%s: %s still listed after RemoveImage", d.Name, ref)
	}
	deadline := time.Now().Add(cleanTimeout)
	for {
		n, size, err := d.storeUsage()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still holds %d entries (%s) under %v %v after RemoveImage",
				d.Name, n, formatMiB(size), d.storeDirs, cleanTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clockTick is USER_HZ, the unit of CPU times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// processCPU is the user+system time of pid and of its children it has
// waited for (containerd's unpigz, for one), from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU sums utime, stime, cutime and cstime (fields 14-17) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its closing parenthesis.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc stat line")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc stat line")
	}
	var ticks int64
	for _, s := range f[11:15] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat CPU field %q: %w", s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * clockTick, nil
}

// sampleRSS samples the RSS of pid and its descendants every interval until
// the returned function is called, which returns the largest sample.
func sampleRSS(pid int, interval time.Duration) (stop func() int64) {
	var (
		mu   sync.Mutex
		peak int64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		rss := treeRSS(pid)
		mu.Lock()
		peak = max(peak, rss)
		mu.Unlock()
	}
	sample()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// treeRSS is the resident memory of pid and all its descendants; processes
// that vanish while it reads count as 0.
func treeRSS(pid int) int64 {
	total := statusKB(pid, "VmRSS:") * 1024
	for _, c := range children(pid) {
		total += treeRSS(c)
	}
	return total
}

// children lists the child processes of every thread of pid.
func children(pid int) []int {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// statusKB reads a "Key:  N kB" line of /proc/PID/status; 0 if absent.
func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	return parseStatusKB(b, key)
}

func parseStatusKB(status []byte, key string) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			v, _ := strconv.ParseInt(f[0], 10, 64)
			return v
		}
	}
	return 0
}
