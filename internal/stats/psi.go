package stats

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PSI is one resource's pressure stall information: "some" is time at
// least one task waited, "full" time all non-idle tasks waited at once.
type PSI struct {
	Some, Full PSIData
	HasFull    bool // cpu.pressure has a "full" line only since Linux 5.13
}

// PSIData is one line of a *.pressure file.
type PSIData struct {
	TotalNanos           uint64  // the kernel counts microseconds
	Avg10, Avg60, Avg300 float64 // percent
}

func readPSI(file string) (PSI, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return PSI{}, err
	}
	p, err := parsePSI(string(data))
	if err != nil {
		return PSI{}, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// parsePSI parses "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" lines.
func parsePSI(s string) (PSI, error) {
	var p PSI
	seen := false
	for line := range strings.Lines(s) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var dst *PSIData
		switch fields[0] {
		case "some":
			dst, seen = &p.Some, true
		case "full":
			dst, p.HasFull = &p.Full, true
		default:
			return PSI{}, fmt.Errorf("unknown pressure line %q", strings.TrimSpace(line))
		}
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return PSI{}, fmt.Errorf("malformed pressure field %q", f)
			}
			var err error
			switch k {
			case "avg10":
				dst.Avg10, err = strconv.ParseFloat(v, 64)
			case "avg60":
				dst.Avg60, err = strconv.ParseFloat(v, 64)
			case "avg300":
				dst.Avg300, err = strconv.ParseFloat(v, 64)
			case "total":
				var us uint64
				us, err = strconv.ParseUint(v, 10, 64)
				dst.TotalNanos = us * 1000
			}
			if err != nil {
				return PSI{}, fmt.Errorf("pressure field %q: %w", f, err)
			}
		}
	}
	if !seen {
		return PSI{}, fmt.Errorf("no \"some\" pressure line")
	}
	return p, nil
}
