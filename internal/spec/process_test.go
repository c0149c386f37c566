package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestProcessArgs(t *testing.T) {
	cases := []struct {
		name            string
		command, args   []string
		entrypoint, cmd []string
		want            []string
	}{
		{"image only", nil, nil, []string{"/entry"}, []string{"serve", "-v"}, []string{"/entry", "serve", "-v"}},
		{"image cmd only", nil, nil, nil, []string{"sh", "-c", "x"}, []string{"sh", "-c", "x"}},
		{"args replace cmd", nil, []string{"run"}, []string{"/entry"}, []string{"serve"}, []string{"/entry", "run"}},
		{"command replaces entrypoint and drops cmd", []string{"/bin/app"}, nil, []string{"/entry"}, []string{"serve"}, []string{"/bin/app"}},
		{"command and args", []string{"/bin/app"}, []string{"-x"}, []string{"/entry"}, []string{"serve"}, []string{"/bin/app", "-x"}},
		{"args without image entrypoint", nil, []string{"echo", "hi"}, nil, []string{"serve"}, []string{"echo", "hi"}},
		{"cleared entrypoint", nil, nil, []string{""}, []string{"sh"}, []string{"sh"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := processArgs(&runtimeapi.ContainerConfig{Command: c.command, Args: c.args},
				&ocispec.ImageConfig{Entrypoint: c.entrypoint, Cmd: c.cmd})
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal(got, c.want) {
				t.Fatalf("args = %q, want %q", got, c.want)
			}
		})
	}
}

func TestProcessArgsErrors(t *testing.T) {
	cases := []struct {
		name   string
		cfg    *runtimeapi.ContainerConfig
		img    ocispec.ImageConfig
		substr string
	}{
		{"nothing", &runtimeapi.ContainerConfig{}, ocispec.ImageConfig{}, "no command"},
		{"cleared entrypoint, no cmd", &runtimeapi.ContainerConfig{}, ocispec.ImageConfig{Entrypoint: []string{""}}, "no command"},
		{"empty program", &runtimeapi.ContainerConfig{Command: []string{""}, Args: []string{"x"}}, ocispec.ImageConfig{}, "no command"},
		{"NUL byte", &runtimeapi.ContainerConfig{Command: []string{"sh", "a\x00b"}}, ocispec.ImageConfig{}, "NUL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := processArgs(c.cfg, &c.img)
			wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
		})
	}
	// The same failure through Build.
	in, _ := testInput()
	in.Image = ocispec.ImageConfig{}
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, "no command")
}

func kv(k, v string) *runtimeapi.KeyValue { return &runtimeapi.KeyValue{Key: k, Value: []byte(v)} }

func TestProcessEnv(t *testing.T) {
	got, err := processEnv("web-0",
		[]string{"LANG=C", "PATH=/opt/bin", "FLAG", "HOSTNAME=image"},
		[]*runtimeapi.KeyValue{kv("LANG", "de_DE"), kv("EMPTY", ""), kv("EQ", "a=b"), kv("FLAG", "on")})
	if err != nil {
		t.Fatal(err)
	}
	// Overrides keep the first position of their key; new keys append.
	want := []string{"PATH=/opt/bin", "HOSTNAME=image", "LANG=de_DE", "FLAG=on", "EMPTY=", "EQ=a=b"}
	if !cmp.Equal(got, want) {
		t.Fatalf("env = %q, want %q", got, want)
	}

	got, err = processEnv("h", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"PATH=" + DefaultPath, "HOSTNAME=h"}; !cmp.Equal(got, want) {
		t.Fatalf("defaults = %q, want %q", got, want)
	}
}

func TestProcessEnvErrors(t *testing.T) {
	for _, c := range []struct {
		kv     *runtimeapi.KeyValue
		substr string
	}{
		{kv("", "x"), "invalid environment variable name"},
		{kv("A=B", "x"), "invalid environment variable name"},
		{kv("A\x00", "x"), "invalid environment variable name"},
		{kv("A", "x\x00y"), "NUL"},
	} {
		_, err := processEnv("h", nil, []*runtimeapi.KeyValue{c.kv})
		wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
	}
}

func TestHostnameEnvFallsBackToNode(t *testing.T) {
	// A host-network pod may have no hostname of its own.
	in, _ := testInput()
	in.Sandbox.Hostname = ""
	s := mustBuild(t, in)
	if s.Process.Env[1] != "HOSTNAME=node-1" {
		t.Fatalf("env = %q", s.Process.Env)
	}
}

func TestWorkingDir(t *testing.T) {
	for _, c := range []struct{ config, image, want string }{
		{"", "", "/"},
		{"", "/srv/app/", "/srv/app"},
		{"", "app", "/app"},
		{"/work//dir/", "/srv", "/work/dir"},
	} {
		got, err := workingDir(c.config, c.image)
		if err != nil || got != c.want {
			t.Errorf("workingDir(%q, %q) = %q, %v; want %q", c.config, c.image, got, err, c.want)
		}
	}
	_, err := workingDir("relative", "/srv")
	wantErr(t, err, errdefs.ErrInvalidArgument, "working_dir")
}

func TestTerminalAndNoNewPrivileges(t *testing.T) {
	in, _ := testInput()
	in.Config.Tty = true
	secCtx(&in).NoNewPrivs = true
	s := mustBuild(t, in)
	if !s.Process.Terminal || !s.Process.NoNewPrivileges {
		t.Fatalf("terminal %v, no_new_privileges %v", s.Process.Terminal, s.Process.NoNewPrivileges)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	for _, c := range []struct {
		want    int64
		current int
		got     int
	}{
		{1000, 0, 1000},
		{-997, -500, -500}, // raised to the daemon's own score
		{-997, -999, -997},
		{0, 0, 0},
	} {
		got, err := oomScoreAdj(c.want, c.current)
		if err != nil || got != c.got {
			t.Errorf("oomScoreAdj(%d, %d) = %d, %v; want %d", c.want, c.current, got, err, c.got)
		}
	}
	for _, bad := range []int64{-1001, 1001} {
		_, err := oomScoreAdj(bad, 0)
		wantErr(t, err, errdefs.ErrInvalidArgument, "oom_score_adj")
	}

	in, _ := testInput()
	in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{OomScoreAdj: -997}
	if got := *mustBuild(t, in).Process.OOMScoreAdj; got != -500 {
		t.Fatalf("built oom_score_adj = %d, want the host's -500", got)
	}
	in.Config.Linux.Resources.OomScoreAdj = 2000
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, "oom_score_adj")
}

func TestRlimits(t *testing.T) {
	in, _ := testInput()
	in.Node.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 4096}}
	s := mustBuild(t, in)
	if !cmp.Equal(s.Process.Rlimits, in.Node.Rlimits) {
		t.Fatalf("rlimits = %+v", s.Process.Rlimits)
	}
	s.Process.Rlimits[0].Soft = 1
	if in.Node.Rlimits[0].Soft != 1024 {
		t.Fatal("the spec shares its rlimits with the node config")
	}

	for _, c := range []struct {
		limits []specs.POSIXRlimit
		substr string
	}{
		{[]specs.POSIXRlimit{{Type: "RLIMIT_FLY", Soft: 1, Hard: 1}}, "unknown rlimit"},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}, "above hard"},
		{[]specs.POSIXRlimit{{Type: "RLIMIT_CORE"}, {Type: "RLIMIT_CORE"}}, "set twice"},
	} {
		in.Node.Rlimits = c.limits
		_, err := Build(in)
		wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
	}
}
