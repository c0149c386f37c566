package cni

import (
	"os"
	"path/filepath"
	"testing"
)

// Leases are read in both host-local formats (ID alone before CNI plugins
// 1.0, ID and interface after), from the config's dataDir, skipping the
// plugin's own files.
func TestHostLocalAllocations(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "ipam")
	conf := `{"cniVersion":"1.0.0","name":"leases","plugins":[{"type":"bridge",
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.98.0.0/24"}]],"dataDir":"` + data + `"}}]}`
	confDir := filepath.Join(dir, "conf")
	for _, d := range []string{confDir, filepath.Join(data, "leases")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-leases.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"10.98.0.2": "pod-a\r\neth0", "10.98.0.3": "pod-b", "lock": "", "last_reserved_ip.0": "10.98.0.3",
	} {
		if err := os.WriteFile(filepath.Join(data, "leases", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := New(confDir, []string{dir}, filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := n.HostLocalAllocations()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("allocations = %+v", got)
	}
	byIP := map[string]Allocation{}
	for _, a := range got {
		byIP[a.IP.String()] = a
	}
	if a := byIP["10.98.0.2"]; a.ContainerID != "pod-a" || a.IfName != "eth0" || a.Network != "leases" {
		t.Errorf("new format: %+v", a)
	}
	if a := byIP["10.98.0.3"]; a.ContainerID != "pod-b" || a.IfName != "" {
		t.Errorf("old format: %+v", a)
	}
}
