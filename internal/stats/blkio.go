package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

type devKey struct{ major, minor uint64 }

// readBlkioV1 reads the throttle counters, which count I/O whatever the
// disk scheduler (blkio.io_service_* stay empty without CFQ/BFQ).
func readBlkioV1(dir string) ([]DeviceIO, error) {
	devs := map[devKey]*DeviceIO{}
	for _, f := range []struct {
		name        string
		read, write func(*DeviceIO) *uint64
	}{
		{"blkio.throttle.io_service_bytes_recursive", func(d *DeviceIO) *uint64 { return &d.ReadBytes }, func(d *DeviceIO) *uint64 { return &d.WriteBytes }},
		{"blkio.throttle.io_serviced_recursive", func(d *DeviceIO) *uint64 { return &d.Reads }, func(d *DeviceIO) *uint64 { return &d.Writes }},
	} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // no blkio controller mounted
		}
		if err != nil {
			return nil, err
		}
		for line := range strings.Lines(string(data)) {
			fields := strings.Fields(line)
			if len(fields) != 3 { // "Total N" and blank lines
				continue
			}
			k, err := parseDev(fields[0])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			v, err := strconv.ParseUint(fields[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			d := device(devs, k)
			switch fields[1] {
			case "Read":
				*f.read(d) = v
			case "Write":
				*f.write(d) = v
			}
		}
	}
	return sortedDevices(devs), nil
}

// readIOStatV2 parses io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...".
func readIOStatV2(file string) ([]DeviceIO, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // io controller not enabled for this cgroup
	}
	if err != nil {
		return nil, err
	}
	devs := map[devKey]*DeviceIO{}
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		k, err := parseDev(fields[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		d := device(devs, k)
		for _, f := range fields[1:] {
			name, val, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			v, err := strconv.ParseUint(val, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", file, f, err)
			}
			switch name {
			case "rbytes":
				d.ReadBytes = v
			case "wbytes":
				d.WriteBytes = v
			case "rios":
				d.Reads = v
			case "wios":
				d.Writes = v
			}
		}
	}
	return sortedDevices(devs), nil
}

func parseDev(s string) (devKey, error) {
	a, b, ok := strings.Cut(s, ":")
	maj, err1 := strconv.ParseUint(a, 10, 32)
	min, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return devKey{}, fmt.Errorf("malformed device %q", s)
	}
	return devKey{maj, min}, nil
}

func device(devs map[devKey]*DeviceIO, k devKey) *DeviceIO {
	d, ok := devs[k]
	if !ok {
		d = &DeviceIO{Major: k.major, Minor: k.minor, Device: devName(k)}
		devs[k] = d
	}
	return d
}

// devName is the /dev name of a block device from sysfs, "" if unknown.
func devName(k devKey) string {
	l, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", k.major, k.minor))
	if err != nil {
		return ""
	}
	return "/dev/" + filepath.Base(l)
}

func sortedDevices(devs map[devKey]*DeviceIO) []DeviceIO {
	out := make([]DeviceIO, 0, len(devs))
	for _, d := range devs {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b DeviceIO) int {
		if a.Major != b.Major {
			return int(a.Major) - int(b.Major)
		}
		return int(a.Minor) - int(b.Minor)
	})
	return out
}
