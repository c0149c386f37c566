package cli

import (
	"errors"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{500 * time.Millisecond, "Less than a second"},
		{time.Second, "1 second"},
		{59 * time.Second, "59 seconds"},
		{90 * time.Second, "About a minute"},
		{59 * time.Minute, "59 minutes"},
		{89 * time.Minute, "About an hour"},
		{91 * time.Minute, "2 hours"},
		{47 * time.Hour, "47 hours"},
		{50 * time.Hour, "2 days"},
		{15 * 24 * time.Hour, "2 weeks"},
		{90 * 24 * time.Hour, "3 months"},
		{800 * 24 * time.Hour, "2 years"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestResolveID(t *testing.T) {
	t.Parallel()
	ids := []string{"abc", "abcd", "abx", "zz"}
	list := func() ([]string, error) { return ids, nil }
	for _, tc := range []struct {
		prefix, want string
		kind         error
	}{
		{"zz", "zz", nil},
		{"abcd", "abcd", nil},
		// A whole ID wins over the longer IDs it prefixes.
		{"abc", "abc", nil},
		{"ab", "", errdefs.ErrInvalidArgument},
		{"q", "", errdefs.ErrNotFound},
		{" ", "", errdefs.ErrInvalidArgument},
	} {
		got, err := resolveID("container", tc.prefix, list, list)
		if got != tc.want || (tc.kind == nil) != (err == nil) || (tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("%q: %q, %v; want %q, %v", tc.prefix, got, err, tc.want, tc.kind)
		}
	}
	// The runtime's answer is checked: an ID without the prefix is ignored.
	wrong := func() ([]string, error) { return []string{"other"}, nil }
	if _, err := resolveID("container", "ab", wrong, wrong); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unmatched answer: %v", err)
	}
	boom := errors.New("boom")
	failing := func() ([]string, error) { return nil, boom }
	if _, err := resolveID("container", "ab", failing, list); !errors.Is(err, boom) {
		t.Errorf("list error: %v", err)
	}
}

func TestNewestFirst(t *testing.T) {
	t.Parallel()
	created := func(n int64) int64 { return n }
	if got := newestFirst([]int64{1, 3, 2}, created, false, 0); len(got) != 3 || got[0] != 3 || got[2] != 1 {
		t.Errorf("sorted %v", got)
	}
	if got := newestFirst([]int64{1, 3, 2}, created, false, 5); len(got) != 3 {
		t.Errorf("--last beyond the list: %v", got)
	}
	if got := newestFirst([]int64{1, 3, 2}, created, true, 0); len(got) != 1 || got[0] != 3 {
		t.Errorf("latest %v", got)
	}
	if got := newestFirst([]int64(nil), created, true, 0); len(got) != 0 {
		t.Errorf("empty %v", got)
	}
}
