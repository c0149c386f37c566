package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/cri"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runningConfigTimeout bounds asking the daemon; a daemon that does not
// answer in time is reported as not running.
const runningConfigTimeout = 3 * time.Second

// daemonConfig asks the daemon on socket for the configuration in force.
func daemonConfig(ctx context.Context, socket string) (config.Config, []string, error) {
	var cfg config.Config
	if _, err := os.Stat(socket); err != nil {
		return cfg, nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, runningConfigTimeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return cfg, nil, err
	}
	defer conn.Close()
	resp, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return cfg, nil, err
	}
	info := resp.GetInfo()
	js, ok := info[cri.InfoConfig]
	if !ok {
		return cfg, nil, fmt.Errorf("the runtime at %s does not report its configuration", socket)
	}
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		return cfg, nil, fmt.Errorf("the runtime at %s reports a configuration cradle cannot read: %w", socket, err)
	}
	var files []string
	_ = json.Unmarshal([]byte(info[cri.InfoConfigFiles]), &files)
	return cfg, files, nil
}

// printRunningConfig prints the daemon's configuration, then, as comments,
// how the files differ from it: keys a reload would apply and keys only a
// restart changes.
func printRunningConfig(w io.Writer, socket string, running config.Config, files []string, fromFiles *config.Loaded, loadErr error) error {
	out, err := running.Marshal()
	if err != nil {
		return err
	}
	read := "no config file (built-in defaults)"
	if len(files) > 0 {
		read = strings.Join(files, ", ")
	}
	fmt.Fprintf(w, "# read: %s\n# in force in the daemon at %s\n", read, socket)
	switch {
	case loadErr != nil:
		fmt.Fprintf(w, "# the files do not load now, a reload would keep this configuration:\n#   %s\n",
			strings.ReplaceAll(loadErr.Error(), "\n", "\n#   "))
	default:
		var reload, restart []string
		for _, k := range config.Diff(running, fromFiles.Config) {
			if config.IsRestartOnly(k) {
				restart = append(restart, k)
			} else {
				reload = append(reload, k)
			}
		}
		if len(reload) > 0 {
			fmt.Fprintf(w, "# the files differ in %s: `systemctl reload cradle` (SIGHUP) applies them\n", strings.Join(reload, ", "))
		}
		if len(restart) > 0 {
			fmt.Fprintf(w, "# the files differ in %s: only a restart applies them\n", strings.Join(restart, ", "))
		}
	}
	_, err = w.Write(out)
	return err
}
