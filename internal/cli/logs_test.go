package cli

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criLog has a line split in three fragments ("sec" "ond" " line") with a
// stderr line between them, an empty line and a record that is not CRI.
const criLog = `2024-01-02T03:04:05.000000001Z stdout F first
2024-01-02T03:04:06Z stdout P sec
2024-01-02T03:04:06.5Z stderr F err line
2024-01-02T03:04:07Z stdout P ond
2024-01-02T03:04:08Z stdout F  line
2024-01-02T03:04:09Z stdout F
garbage
2024-01-02T04:04:10+01:00 stdout F:x last
`

// withLog points container ctrA's log path at a file with content, named
// as kubelet names the log of attempt 1.
func withLog(t *testing.T, f *fakeCRI, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nginx")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "1.log")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.rt.logPaths = map[string]string{ctrA: path}
	f.mu.Unlock()
	return path
}

func TestLogs(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	path := withLog(t, f, criLog)
	warning := "Warning: skipped 1 line(s) of " + path + " not in the CRI log format\n"
	for _, tc := range []struct {
		args           []string
		stdout, stderr string
	}{
		{nil, "first\nsecond line\n\nlast\n", "err line\n"},
		// A joined line counts once.
		{[]string{"--tail", "3"}, "second line\n\nlast\n", ""},
		{[]string{"--tail", "0"}, "", ""},
		{[]string{"--tail", "-1"}, "first\nsecond line\n\nlast\n", "err line\n"},
		// A line is as old as its first fragment.
		{[]string{"--since", "2024-01-02T03:04:06Z"}, "second line\n\nlast\n", "err line\n"},
		{[]string{"--since", "2024-01-02T03:04:06.1Z"}, "\nlast\n", "err line\n"},
		{[]string{"--since", "2024-01-02T03:04:06.1Z", "--tail", "1"}, "last\n", ""},
		// Every line is older than 10s.
		{[]string{"--since", "10s"}, "", ""},
		{[]string{"-t", "--tail", "4"},
			"2024-01-02T03:04:06Z second line\n2024-01-02T03:04:09Z \n2024-01-02T04:04:10+01:00 last\n",
			"2024-01-02T03:04:06.5Z err line\n"},
	} {
		r := runCLI(t, ep, append([]string{"logs"}, append(tc.args, "c1a")...)...)
		mustSucceed(t, r)
		if r.stdout != tc.stdout || r.stderr != tc.stderr+warning {
			t.Errorf("%v: stdout %q stderr %q, want %q and %q", tc.args, r.stdout, r.stderr, tc.stdout, tc.stderr+warning)
		}
	}
	st := requests(f, &f.rt.ctrStatuses)
	if len(st) == 0 || st[0].ContainerId != ctrA || st[0].Verbose {
		t.Errorf("status requests %v", st)
	}
}

func TestLogsSinceRelative(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	old, recent := time.Now().Add(-time.Hour).UTC(), time.Now().Add(-time.Second).UTC()
	withLog(t, f, old.Format(time.RFC3339Nano)+" stdout F old\n"+recent.Format(time.RFC3339Nano)+" stdout F recent\n")
	r := runCLI(t, ep, "logs", "--since", "10m", ctrA)
	mustSucceed(t, r)
	if r.stdout != "recent\n" {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestLogsUnendedLine(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	// A fragment never ended, and a record the runtime is still writing.
	withLog(t, f, "2024-01-02T03:04:05Z stdout P half\n2024-01-02T03:04:06Z stderr F no newline yet")
	r := runCLI(t, ep, "logs", ctrA)
	mustSucceed(t, r)
	if r.stdout != "half" || r.stderr != "no newline yet\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestLogsErrors(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	path := withLog(t, f, criLog)
	n := len(requests(f, &f.rt.ctrStatuses))
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"logs", "--since", "yesterday", ctrA}, `--since "yesterday": want a duration (10s, 5m) or an RFC 3339 time`},
		{[]string{"logs", "--since", "-5s", ctrA}, "must not be negative"},
		{[]string{"logs", "--tail", "-2", ctrA}, "--tail must be -1 (all) or more, got -2"},
		{[]string{"logs", "c1", "x"}, `needs a CONTAINER`},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.msg)
	}
	if got := len(requests(f, &f.rt.ctrStatuses)); got != n {
		t.Errorf("bad flags still asked for the status")
	}
	mustFail(t, runCLI(t, ep, "logs", "c1"), `container ID prefix "c1" is ambiguous`)
	mustFail(t, runCLI(t, ep, "logs", ctrB), "container "+ctrB+" has no log file")
	// ctrA is attempt 1: its previous log is 0.log, which is missing.
	mustFail(t, runCLI(t, ep, "logs", "-p", ctrA), "log file "+filepath.Join(filepath.Dir(path), "0.log")+" of container "+ctrA+" does not exist")
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "0.log"), []byte("2024-01-01T00:00:00Z stdout F before restart\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, ep, "logs", "--previous", ctrA)
	mustSucceed(t, r)
	if r.stdout != "before restart\n" {
		t.Errorf("previous stdout %q", r.stdout)
	}
	// ctrC is a first attempt.
	f.mu.Lock()
	f.rt.logPaths[ctrC] = "/var/log/pods/x/db/0.log"
	f.rt.logPaths[ctrB] = "relative/0.log"
	f.mu.Unlock()
	mustFail(t, runCLI(t, ep, "logs", "-p", ctrC), "container "+ctrC+" is the first attempt: there is no previous log")
	mustFail(t, runCLI(t, ep, "logs", ctrB), `the runtime reports a relative log path "relative/0.log"`)
}

func TestLogsFollow(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	path := withLog(t, f, "2024-01-02T03:04:05Z stdout F one\n2024-01-02T03:04:06Z stdout P tw")
	env, out, _ := testEnv()
	done := make(chan result, 1)
	go func() { done <- runCLIEnv(t, env, ep, "logs", "-f", "--tail", "1", ctrA) }()

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for out.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("stdout %q, want %q", out.String(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("one\n")
	// The unfinished record and fragment are held until their line ends.
	lf, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if _, err := lf.WriteString("o\n2024-01-02T03:04:07Z stdout F  three\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("one\ntwo three\n")
	if _, err := lf.WriteString("2024-01-02T03:04:08Z stdout F last\n"); err != nil {
		t.Fatal(err)
	}
	// The container exits: what it wrote last is printed and logs ends.
	f.setContainerState(ctrA, runtimeapi.ContainerState_CONTAINER_EXITED)
	select {
	case r := <-done:
		mustSucceed(t, r)
		if r.stdout != "one\ntwo three\nlast\n" {
			t.Errorf("stdout %q", r.stdout)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("logs -f did not end after the container exited")
	}
}

func TestParseCRILogRecord(t *testing.T) {
	t.Parallel()
	for _, rec := range []string{
		"", "garbage", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z stdout",
		"2024-01-02T03:04:05Z stdin F x", "2024-01-02T03:04:05Z stdout X x", "yesterday stdout F x",
	} {
		if _, _, _, _, err := parseCRILogRecord([]byte(rec)); err == nil {
			t.Errorf("%q parsed", rec)
		}
	}
	ts, stderr, partial, content, err := parseCRILogRecord([]byte("2024-01-02T03:04:05.5Z stderr P  two  spaces "))
	if err != nil || !stderr || !partial || string(content) != " two  spaces " || !ts.Equal(time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)) {
		t.Errorf("got %v %v %v %q %v", ts, stderr, partial, content, err)
	}
}

func TestLogsFollowEndsWhenContainerIsRemoved(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	withLog(t, f, "2024-01-02T03:04:05Z stdout F one\n")
	env, out, _ := testEnv()
	done := make(chan result, 1)
	go func() { done <- runCLIEnv(t, env, ep, "logs", "--follow", ctrA) }()
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatalf("stdout %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	f.containers = f.containers[1:] // ctrA
	f.mu.Unlock()
	select {
	case r := <-done:
		mustSucceed(t, r)
	case <-time.After(20 * time.Second):
		t.Fatal("logs -f did not end after the container was removed")
	}
}
