package stats

import (
	"path/filepath"
	"strings"
	"testing"
)

// Pressure files as Linux 6.x writes them for a cgroup v2 cgroup.
const (
	cpuPressureV2 = "some avg10=1.53 avg60=1.49 avg300=3.21 total=1876172344\n" +
		"full avg10=0.25 avg60=0.00 avg300=0.00 total=4500\n"
	memPressureOld = "some avg10=0.00 avg60=0.00 avg300=0.00 total=12\n" // before "full" on cpu, for instance
)

func TestParsePSI(t *testing.T) {
	p, err := parsePSI(cpuPressureV2)
	if err != nil {
		t.Fatal(err)
	}
	want := PSI{
		Some:    PSIData{TotalNanos: 1876172344000, Avg10: 1.53, Avg60: 1.49, Avg300: 3.21},
		Full:    PSIData{TotalNanos: 4500000, Avg10: 0.25},
		HasFull: true,
	}
	if p != want {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
	if p, err = parsePSI(memPressureOld); err != nil || p.HasFull || p.Some.TotalNanos != 12000 {
		t.Fatalf("some-only file: %+v, %v", p, err)
	}
	for _, bad := range []string{
		"",
		"full avg10=0.00 total=1\n",
		"some avg10=x total=1\n",
		"some avg10=0.00 total=-1\n",
		"some avg10\n",
		"partial avg10=0.00\n",
	} {
		if _, err := parsePSI(bad); err == nil {
			t.Errorf("parsePSI(%q) accepted", bad)
		}
	}
}

func TestReadDetailPressureV2(t *testing.T) {
	root := v2DetailTree(t)
	dir := "kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/"
	writeFiles(t, root, map[string]string{
		dir + "cpu.pressure":    cpuPressureV2,
		dir + "memory.pressure": memPressureOld,
		// io.pressure absent: the kernel keeps none, so none is reported.
	})
	h := Hierarchy{Root: root, V2: true, PSI: true}
	d, err := h.ReadDetail("kubepods-besteffort.slice:cradle:c1")
	if err != nil {
		t.Fatal(err)
	}
	if d.CPUPressure == nil || d.CPUPressure.Full.TotalNanos != 4500000 || !d.CPUPressure.HasFull {
		t.Errorf("cpu pressure = %+v", d.CPUPressure)
	}
	if d.MemoryPressure == nil || d.MemoryPressure.Some.TotalNanos != 12000 || d.IOPressure != nil {
		t.Errorf("memory %+v io %+v", d.MemoryPressure, d.IOPressure)
	}

	// A kernel without cgroup PSI: nothing is read, nothing invented.
	h.PSI = false
	if d, err = h.ReadDetail("kubepods-besteffort.slice:cradle:c1"); err != nil || d.CPUPressure != nil || d.MemoryPressure != nil {
		t.Fatalf("PSI off: %+v, %v", d, err)
	}

	writeFiles(t, root, map[string]string{dir + "cpu.pressure": "some avg10=bad\n"})
	h.PSI = true
	if _, err := h.ReadDetail("kubepods-besteffort.slice:cradle:c1"); err == nil || !strings.Contains(err.Error(), "cpu.pressure") {
		t.Fatalf("corrupt cpu.pressure: %v", err)
	}
}

func TestReadDetailPressureHybridMirror(t *testing.T) {
	root := v1DetailTree(t)
	// v1 controllers have no pressure files; runc's unified mirror has.
	writeFiles(t, root, map[string]string{filepath.Join("unified/pod/c1", "io.pressure"): cpuPressureV2})
	d, err := Hierarchy{Root: root, PSI: true}.ReadDetail("/pod/c1")
	if err != nil {
		t.Fatal(err)
	}
	if d.IOPressure == nil || d.IOPressure.Some.TotalNanos != 1876172344000 || d.CPUPressure != nil {
		t.Fatalf("hybrid pressure: io %+v cpu %+v", d.IOPressure, d.CPUPressure)
	}
}
