package spec

import (
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// DefaultPath is PATH for images that set none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func buildProcess(in *Input, sc *runtimeapi.LinuxContainerSecurityContext) (*specs.Process, error) {
	args, err := processArgs(in.Config, &in.Image)
	if err != nil {
		return nil, err
	}
	hostname := in.Sandbox.GetHostname()
	if hostname == "" {
		hostname = in.Node.Host.Hostname
	}
	env, err := processEnv(hostname, in.Image.Env, in.Config.GetEnvs())
	if err != nil {
		return nil, err
	}
	cwd, err := workingDir(in.Config.GetWorkingDir(), in.Image.WorkingDir)
	if err != nil {
		return nil, err
	}
	user, err := resolveUser(in, sc)
	if err != nil {
		return nil, err
	}
	caps, err := buildCapabilities(sc, in.Node.capabilitiesFor(in.Handler))
	if err != nil {
		return nil, err
	}
	rlimits, err := checkRlimits(in.Node.Rlimits)
	if err != nil {
		return nil, err
	}
	apparmor, err := apparmorProfile(sc, in.Node, in.Node.system())
	if err != nil {
		return nil, err
	}
	p := &specs.Process{
		Terminal:        in.Config.GetTty(),
		User:            user,
		Args:            args,
		Env:             env,
		Cwd:             cwd,
		Capabilities:    caps,
		Rlimits:         rlimits,
		NoNewPrivileges: sc.GetNoNewPrivs(),
		ApparmorProfile: apparmor,
	}
	if res := in.Config.GetLinux().GetResources(); res != nil {
		adj, err := oomScoreAdj(res.GetOomScoreAdj(), in.Node.Host.OOMScoreAdj)
		if err != nil {
			return nil, err
		}
		p.OOMScoreAdj = &adj
	}
	return p, nil
}

// processArgs merges the CRI command and args with the image the way
// kubelet documents it: command replaces ENTRYPOINT, args replace CMD, and
// a command given alone drops the image's CMD too.
func processArgs(cfg *runtimeapi.ContainerConfig, img *ocispec.ImageConfig) ([]string, error) {
	command, args := cfg.GetCommand(), cfg.GetArgs()
	if len(command) == 0 {
		command = img.Entrypoint
		// ENTRYPOINT [""] is how a Dockerfile clears an inherited one.
		if len(command) == 1 && command[0] == "" {
			command = nil
		}
		if len(args) == 0 {
			args = img.Cmd
		}
	}
	argv := append(append([]string{}, command...), args...)
	if len(argv) == 0 || argv[0] == "" {
		return nil, errdefs.InvalidArgument("no command specified: neither the container config nor the image gives one")
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, errdefs.InvalidArgument("command argument %q contains a NUL byte", a)
		}
	}
	return argv, nil
}

// processEnv builds the environment in a fixed order: PATH and HOSTNAME
// defaults, then the image's variables, then the config's. A later value
// for a key replaces the earlier one in place.
func processEnv(hostname string, image []string, config []*runtimeapi.KeyValue) ([]string, error) {
	var env []string
	at := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := at[k]; ok {
			env[i] = kv
			return
		}
		at[k] = len(env)
		env = append(env, kv)
	}
	set("PATH=" + DefaultPath)
	set("HOSTNAME=" + hostname)
	for _, kv := range image {
		set(kv)
	}
	for _, kv := range config {
		k, v := kv.GetKey(), string(kv.GetValue())
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, errdefs.InvalidArgument("invalid environment variable name %q", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, errdefs.InvalidArgument("environment variable %q contains a NUL byte", k)
		}
		set(k + "=" + v)
	}
	return env, nil
}

func workingDir(config, image string) (string, error) {
	if config != "" {
		if !path.IsAbs(config) {
			return "", errdefs.InvalidArgument("working_dir %q is not absolute", config)
		}
		return path.Clean(config), nil
	}
	if image != "" {
		// Images built by old tools may carry a relative WORKDIR; Docker
		// resolves it from the root.
		return path.Join("/", image), nil
	}
	return "/", nil
}

// oomScoreAdj raises a request below the daemon's own score to it: the
// kernel refuses lower values to a process without CAP_SYS_RESOURCE.
func oomScoreAdj(want int64, current int) (int, error) {
	if want < -1000 || want > 1000 {
		return 0, errdefs.InvalidArgument("oom_score_adj %d is outside [-1000, 1000]", want)
	}
	return max(int(want), current), nil
}

var rlimitTypes = map[string]bool{
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": true, "RLIMIT_DATA": true,
	"RLIMIT_FSIZE": true, "RLIMIT_LOCKS": true, "RLIMIT_MEMLOCK": true,
	"RLIMIT_MSGQUEUE": true, "RLIMIT_NICE": true, "RLIMIT_NOFILE": true,
	"RLIMIT_NPROC": true, "RLIMIT_RSS": true, "RLIMIT_RTPRIO": true,
	"RLIMIT_RTTIME": true, "RLIMIT_SIGPENDING": true, "RLIMIT_STACK": true,
}

func checkRlimits(limits []specs.POSIXRlimit) ([]specs.POSIXRlimit, error) {
	seen := map[string]bool{}
	for _, l := range limits {
		switch {
		case !rlimitTypes[l.Type]:
			return nil, errdefs.InvalidArgument("unknown rlimit type %q", l.Type)
		case seen[l.Type]:
			return nil, errdefs.InvalidArgument("rlimit %s is set twice", l.Type)
		case l.Soft > l.Hard:
			return nil, errdefs.InvalidArgument("rlimit %s: soft limit %d is above hard limit %d", l.Type, l.Soft, l.Hard)
		}
		seen[l.Type] = true
	}
	if limits == nil {
		return nil, nil
	}
	return append([]specs.POSIXRlimit{}, limits...), nil
}
