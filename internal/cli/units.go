package cli

import (
	"strconv"
	"strings"
)

var decimalUnits = []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"}

// humanSize formats a byte count the way crictl's image table does: units of
// 1000 and three significant digits ("4.26MB", "742kB", "0B").
func humanSize(n uint64) string { return humanSizePrecision(float64(n), 3) }

// humanSizePrecision formats size with precision significant digits. Unlike
// go-units, a value that rounds up to 1000 moves to the next unit ("1MB",
// not "1e+03kB").
func humanSizePrecision(size float64, precision int) string {
	i := 0
	for size >= 1000 && i < len(decimalUnits)-1 {
		size /= 1000
		i++
	}
	s := strconv.FormatFloat(size, 'g', precision, 64)
	if strings.Contains(s, "e") && i < len(decimalUnits)-1 {
		size /= 1000
		i++
		s = strconv.FormatFloat(size, 'g', precision, 64)
	}
	return s + decimalUnits[i]
}
