package cli

import (
	"encoding/json"
	"io"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func fixtureEvents() []*runtimeapi.ContainerEventResponse {
	return []*runtimeapi.ContainerEventResponse{
		{ContainerId: ctrA, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, CreatedAt: 1,
			PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: podA}},
		{ContainerId: ctrA, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, CreatedAt: 2},
		{ContainerId: ctrB, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, CreatedAt: 3},
	}
}

func newEventsFake(t *testing.T) (*fakeCRI, string) {
	f, ep := newFake(t)
	f.mu.Lock()
	f.st.events = fixtureEvents()
	f.mu.Unlock()
	return f, ep
}

func TestEventsFormats(t *testing.T) {
	t.Parallel()
	_, ep := newEventsFake(t)

	// JSON (the default): one document per event; the runtime closing the
	// stream ends the command normally.
	r := runCLI(t, ep, "events")
	mustSucceed(t, r)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	var got []string
	for {
		var ev struct {
			ContainerID string `json:"containerId"`
			Type        string `json:"containerEventType"`
		}
		if err := dec.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not a JSON stream: %v\n%s", err, r.stdout)
		}
		got = append(got, ev.ContainerID[:4]+" "+ev.Type)
	}
	want := "c1aa CONTAINER_CREATED_EVENT|c1aa CONTAINER_STARTED_EVENT|c1bb CONTAINER_STOPPED_EVENT"
	if strings.Join(got, "|") != want {
		t.Errorf("events %q, want %q", got, want)
	}

	r = runCLI(t, ep, "events", "-o", "yaml")
	mustSucceed(t, r)
	yd := yaml.NewDecoder(strings.NewReader(r.stdout))
	n := 0
	for {
		var ev map[string]any
		if err := yd.Decode(&ev); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not a YAML stream: %v\n%s", err, r.stdout)
		}
		if n == 0 && ev["containerEventType"] != "CONTAINER_CREATED_EVENT" {
			t.Errorf("first YAML event %v", ev)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d YAML documents, want 3:\n%s", n, r.stdout)
	}

	r = runCLI(t, ep, "events", "-o", "go-template", "--template", "{{.containerEventType}} {{.podSandboxStatus.id}}")
	// Only the first event has a pod status: the others fail the template
	// and are reported without ending the stream.
	if r.code != 0 || r.stdout != "CONTAINER_CREATED_EVENT "+podA+"\n" {
		t.Errorf("go-template: exit %d stdout %q", r.code, r.stdout)
	}
	if strings.Count(r.stderr, "Error: event of container") != 2 {
		t.Errorf("template failures not reported: %q", r.stderr)
	}
}

func TestEventsRefusesBadInputBeforeAnyCall(t *testing.T) {
	t.Parallel()
	f, ep := newEventsFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"events", "-o", "table"}, `unsupported output format "table"`},
		{[]string{"events", "-o", "go-template"}, "--template is required"},
		{[]string{"events", "-o", "go-template", "--template", "{{.x"}, "parse template"},
		{[]string{"events", "--template", "{{.x}}"}, "--template only applies to -o go-template"},
		{[]string{"events", "extra"}, "takes at most 0 argument"},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.want)
	}
	f.mu.Lock()
	n := f.st.eventRequests
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("bad command lines opened %d event streams", n)
	}
}

func TestEventsStreamUntilInterrupted(t *testing.T) {
	t.Parallel()
	f, ep := newEventsFake(t)
	f.mu.Lock()
	f.st.holdEvents = true
	f.mu.Unlock()
	env, out, _ := testEnv()
	stop := startCLI(t, env, ep, "events", "-o", "go-template", "--template", "{{.containerId}}")
	waitUntil(t, "three events", func() bool { return strings.Count(out.String(), "\n") == 3 })
	if r := stop(); r.code != 0 {
		t.Errorf("Ctrl-C ended events with %d: %s", r.code, r.stderr)
	}
}

func TestEventsRuntimeError(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.mu.Lock()
	f.st.eventsErr = status.Error(codes.Unimplemented, "events are not served")
	f.mu.Unlock()
	mustFail(t, runCLI(t, ep, "events"), "Error: container events: events are not served\n")
}
