package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// listFlags are the selection flags pods and ps share.
type listFlags struct {
	id, name, state string
	labels          []string
	output          string
	quiet, noTrunc  bool
	latest          bool
	last            int
}

// nameMatcher compiles --name (and pods --namespace): like crictl a regular
// expression matched anywhere in the name; empty matches everything.
func nameMatcher(flag, pattern string) (func(string) bool, error) {
	if pattern == "" {
		return func(string) bool { return true }, nil
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, errdefs.InvalidArgument("%s %q is not a regular expression: %v", flag, pattern, err)
	}
	return re.MatchString, nil
}

// labelSelector parses repeated --label KEY=VALUE flags into the CRI's
// exact-match selector.
func labelSelector(labels []string) (map[string]string, error) {
	return parseKeyValues("--label", labels)
}

// newestFirst sorts items by creation time, newest first (as crictl lists
// them), and keeps only the latest one or the last n when asked to.
func newestFirst[T any](items []T, created func(T) int64, latest bool, last int) []T {
	slices.SortStableFunc(items, func(a, b T) int {
		ca, cb := created(a), created(b)
		switch {
		case ca > cb:
			return -1
		case ca < cb:
			return 1
		}
		return 0
	})
	n := len(items)
	if last > 0 && last < n {
		n = last
	}
	if latest && n > 1 {
		n = 1
	}
	return items[:n]
}

func checkLast(latest bool, last int) error {
	if last < 0 {
		return errdefs.InvalidArgument("--last must not be negative, got %d", last)
	}
	if latest && last > 0 {
		return errdefs.InvalidArgument("--latest and --last exclude each other")
	}
	return nil
}

// stateName turns a CRI enum name (SANDBOX_NOTREADY, CONTAINER_EXITED) into
// the word tables print (NotReady, Exited).
func stateName(enum, prefix string) string {
	s := strings.TrimPrefix(enum, prefix)
	if s == "NOTREADY" {
		return "NotReady"
	}
	if s == "" {
		return s
	}
	return s[:1] + strings.ToLower(s[1:])
}

// ago formats the age of a CRI timestamp (nanoseconds) the way crictl's
// tables do: "3 hours ago".
func ago(nanos int64, now time.Time) string {
	return humanDuration(now.Sub(time.Unix(0, nanos))) + " ago"
}

// humanDuration is the coarse duration wording of docker's go-units,
// which crictl prints.
func humanDuration(d time.Duration) string {
	seconds := int(d.Seconds())
	switch {
	case seconds < 1:
		return "Less than a second"
	case seconds == 1:
		return "1 second"
	case seconds < 60:
		return fmt.Sprintf("%d seconds", seconds)
	}
	minutes := int(d.Minutes())
	switch {
	case minutes == 1:
		return "About a minute"
	case minutes < 60:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := int(d.Hours() + 0.5)
	switch {
	case hours == 1:
		return "About an hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	case hours < 24*7*2:
		return fmt.Sprintf("%d days", hours/24)
	case hours < 24*30*2:
		return fmt.Sprintf("%d weeks", hours/24/7)
	case hours < 24*365*2:
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// shortID is an ID as tables print it: cut to 13 characters unless
// --no-trunc.
func shortID(id string, noTrunc bool) string {
	if noTrunc {
		return id
	}
	return truncateID(id)
}
