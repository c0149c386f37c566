package main

import (
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a parenthesis must not shift the fields:
	// utime 150, stime 50, cutime 7, cstime 3 ticks = 2.1 s.
	line := []byte("4242 (evil) name (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 150 50 7 3 20 0 12 0 100 0 0")
	got, err := parseStatCPU(line)
	if err != nil || got != 2100*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 2.1s", got, err)
	}
	for _, bad := range []string{"", "4242 no parens S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 1 1 1"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) gave no error", bad)
		}
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tcontainerd\nVmPeak:\t 1000 kB\nVmHWM:\t   51234 kB\nVmRSS:\t   40000 kB\n")
	if got := parseStatusKB(status, "VmHWM:"); got != 51234 {
		t.Errorf("VmHWM = %d, want 51234", got)
	}
	if got := parseStatusKB(status, "VmRSS:"); got != 40000 {
		t.Errorf("VmRSS = %d, want 40000", got)
	}
	if got := parseStatusKB(status, "VmSwap:"); got != 0 {
		t.Errorf("absent key = %d, want 0", got)
	}
}

func TestPlanLayer(t *testing.T) {
	const size = 32 << 20
	plan := planLayer(3, size, 0.25, rand.New(rand.NewPCG(1, 2)))
	var total, random int64
	names := map[string]bool{}
	for _, f := range plan {
		if f.size <= 0 || f.size > maxFileSize {
			t.Fatalf("file %s has size %d", f.name, f.size)
		}
		if names[f.name] || !strings.HasPrefix(f.name, "bench/l3/") {
			t.Fatalf("bad or repeated name %q", f.name)
		}
		names[f.name] = true
		total += f.size
		if f.random {
			random += f.size
		}
	}
	if total != size {
		t.Errorf("files add up to %d, want %d", total, size)
	}
	if frac := float64(random) / size; frac < 0.2 || frac > 0.3 {
		t.Errorf("random share %.3f, want about 0.25", frac)
	}
	if len(plan) < 50 {
		t.Errorf("only %d files: sizes are not spread out", len(plan))
	}
	for _, f := range planLayer(0, 1<<20, 0, rand.New(rand.NewPCG(1, 2))) {
		if f.random {
			t.Fatal("random file with randomFraction 0")
		}
	}
}

// The text must make gzip work (compress well) yet not be trivially
// repetitive, or the benchmark would not exercise decompression realistically.
func TestTextCompressesModerately(t *testing.T) {
	g := newTextGen(rand.New(rand.NewPCG(7, 7)))
	b := make([]byte, 256<<10)
	g.fill(b)
	if bytes.IndexByte(b, 0) >= 0 {
		t.Fatal("fill left zero bytes")
	}
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(b)
	w.Close()
	if ratio := float64(len(b)) / float64(z.Len()); ratio < 2 || ratio > 4 {
		t.Errorf("gzip ratio of text %.2f, want between 2 and 4", ratio)
	}
}

func TestConfigsNameTheirDirs(t *testing.T) {
	c := newContainerdSetup("/w", "/usr/bin/containerd", "/usr/sbin/runc", "/w/certs.d", "/w/cni")
	conf := c.configTOML()
	for _, want := range []string{`root = "/w/containerd/root"`, `state = "/w/containerd/state"`,
		`address = "/w/containerd/state/containerd.sock"`, `config_path = "/w/certs.d"`, `BinaryName = "/usr/sbin/runc"`} {
		if !strings.Contains(conf, want) {
			t.Errorf("containerd config lacks %s:\n%s", want, conf)
		}
	}
	k := newCradleSetup("/w", "/bin/cradle", "/w/certs.d", "/w/cni").configTOML()
	for _, want := range []string{`root = "/w/cradle/root"`, `socket = "/w/cradle/state/cradle.sock"`, `config_path = "/w/certs.d"`} {
		if !strings.Contains(k, want) {
			t.Errorf("cradle config lacks %s:\n%s", want, k)
		}
	}
}
