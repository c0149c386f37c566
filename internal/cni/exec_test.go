package cni

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecPluginOutcomes(t *testing.T) {
	x := &pluginExec{}
	ctx := context.Background()

	out, err := x.ExecPlugin(ctx, script(t, `cat >/dev/null; echo '{"cniVersion":"1.0.0"}'`), []byte("{}"), nil)
	if err != nil || strings.TrimSpace(string(out)) != `{"cniVersion":"1.0.0"}` {
		t.Fatalf("success: %q, %v", out, err)
	}

	_, err = x.ExecPlugin(ctx, script(t, `echo '{"code": 7, "msg": "bad config", "details": "field x"}'; exit 1`), nil, nil)
	var te *types.Error
	if !errors.As(err, &te) || te.Code != 7 || te.Error() != "bad config; field x" {
		t.Fatalf("CNI error: %#v", err)
	}

	_, err = x.ExecPlugin(ctx, script(t, `echo 'panic: oops'; exit 2`), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "not a CNI error") || !strings.Contains(err.Error(), "panic: oops") {
		t.Fatalf("non-JSON stdout: %v", err)
	}

	_, err = x.ExecPlugin(ctx, script(t, `head -c 2000000 /dev/zero`), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("flooding stdout: %v", err)
	}

	_, err = x.ExecPlugin(ctx, script(t, `head -c 100000 /dev/zero | tr '\0' e >&2; exit 3`), nil, nil)
	if err == nil || len(err.Error()) > maxDiag+200 || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("flooding stderr: error of %d bytes: %.200v", len(err.Error()), err)
	}

	_, err = x.ExecPlugin(ctx, filepath.Join(t.TempDir(), "missing"), nil, nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing binary: %v", err)
	}
}

// A plugin that succeeds but leaves a child holding its stdout still
// returns, after outputGrace instead of when the child exits.
func TestExecPluginStragglerDoesNotHoldSuccess(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	p := script(t, `sleep 300 & echo $! > `+pidFile+`; echo '{"cniVersion":"1.0.0"}'`)
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	done := make(chan error, 1)
	go func() {
		out, err := (&pluginExec{}).ExecPlugin(context.Background(), p, nil, nil)
		if err == nil && !strings.Contains(string(out), "1.0.0") {
			err = errors.New("output lost: " + string(out))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a straggling child held the plugin call")
	}
}
