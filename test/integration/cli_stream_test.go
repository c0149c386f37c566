package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCLIStreamingVerbs drives exec -i/-t, attach, port-forward and stats of
// the cradle CLI, as a separate process, against a real daemon and pod.
func TestCLIStreamingVerbs(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	web := testkit.MustGoBinaryLayer(t, "github.com/cradle-runtime/cradle/hack/demoweb", "/usr/bin/demoweb", testkit.Gzip)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	img := testkit.MustImage(t, testkit.ImageConfig{Entrypoint: []string{"/usr/bin/demoweb"}, Cmd: []string{":8080"}}, base, web)
	if _, err := reg.Push("it/clistream:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/clistream:1")

	d, pod, podID, _ := podWithImage(t, "clistream", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})
	webID, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("web", imageName), pod)
	if err != nil {
		t.Fatal(err)
	}
	// Reads one line from its stdin, for attach -i.
	readerCfg := containerConfig("reader", imageName, "sh", "-c", `read line; echo "got:$line"; sleep 3600`)
	readerCfg.Stdin = true
	readerID, err := d.Runtime.CreateContainer(ctx, podID, readerCfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{webID, readerID} {
		if err := d.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	}
	cradle := func(args ...string) *exec.Cmd {
		return exec.Command(binary(t), append([]string{"--runtime-endpoint", "unix://" + d.socket}, args...)...)
	}

	t.Run("exec -i with stdin piped", func(t *testing.T) {
		cmd := cradle("exec", "-i", webID[:12], "cat")
		cmd.Stdin = strings.NewReader("hi\n")
		out, err := cmd.Output()
		if err != nil || string(out) != "hi\n" {
			t.Errorf("echo hi | cradle exec -i cat: %q, %v", out, exitDetail(err))
		}
	})

	t.Run("exit code propagation", func(t *testing.T) {
		for _, args := range [][]string{
			{"exec", "-i", webID, "sh", "-c", "exit 3"},
			{"exec", "--sync=false", webID, "sh", "-c", "exit 3"},
			{"exec", webID, "sh", "-c", "exit 3"},
		} {
			cmd := cradle(args...)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 {
				t.Errorf("cradle %s: %v, want exit status 3\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	t.Run("exec over websocket", func(t *testing.T) {
		out, err := cradle("exec", "--sync=false", "--transport", "websocket", webID, "sh", "-c", "echo hi; echo oops >&2").Output()
		if err != nil || string(out) != "hi\n" {
			t.Errorf("websocket exec: %q, %v", out, exitDetail(err))
		}
		err = cradle("exec", "--sync=false", "-r", "websocket", webID, "sh", "-c", "exit 6").Run()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 6 {
			t.Errorf("websocket exec exit: %v, want exit status 6", err)
		}
	})

	t.Run("exec -it starts with the caller's terminal size", func(t *testing.T) {
		master, slave := openPTY(t)
		setWinsize(t, slave, 91, 27)
		// The command's terminal has the caller's size from the start,
		// with no later resize from the client (the loop only tolerates a
		// slow start).
		cmd := cradle("exec", "-it", webID, "sh", "-c",
			`for i in $(seq 100); do s=$(stty size 2>/dev/null) && [ "$s" != "0 0" ] && break; sleep 0.05; done; echo "size:$s"`)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		term := &ptyReader{}
		go term.drain(master)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exec -it stty size: %v\n%q", err, term.String())
		}
		term.waitFor(t, "size:27 91", nil)
	})

	t.Run("exec -it through a terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		setWinsize(t, slave, 91, 27)
		// The shell waits for its terminal to take the size set below,
		// then reads a line.
		script := `until [ "$(stty size 2>/dev/null)" = "30 100" ]; do sleep 0.1; done; echo "resized:$(stty size)"; read x; echo "typed:$x"; exit 4`
		cmd := cradle("exec", "-it", webID, "sh", "-c", script)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		term := &ptyReader{}
		go term.drain(master)

		setWinsize(t, slave, 100, 30)
		term.waitFor(t, "resized:30 100", func() { _ = cmd.Process.Signal(syscall.SIGWINCH) })
		// Raw mode locally: the remote terminal echoes and sees a CR.
		if _, err := master.Write([]byte("abc\r")); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-waited:
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 4 {
				t.Errorf("exec -it ended with %v, want exit status 4\n%s", err, term.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("exec -it did not end\n%s", term.String())
		}
		if !strings.Contains(term.String(), "typed:abc") {
			t.Errorf("terminal output %q lacks the typed line", term.String())
		}
	})

	t.Run("attach -i", func(t *testing.T) {
		cmd := cradle("attach", "-i", readerID)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &ptyReader{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// Written before the session is up, the line waits in the pipe.
		if _, err := io.WriteString(stdin, "hello\n"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "the container to read the attached stdin", func() bool {
			return strings.Contains(out.String(), "got:hello")
		})
	})

	t.Run("port-forward", func(t *testing.T) {
		cmd := cradle("port-forward", podID, ":8080")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill() }()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		m := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080`).FindStringSubmatch(line)
		if err != nil || m == nil {
			t.Fatalf("first line %q, %v (stderr %s)", line, err, stderr.String())
		}
		go io.Copy(io.Discard, stdout) //nolint:errcheck // "Handling connection" lines
		url := "http://127.0.0.1:" + m[1] + "/"
		var page string
		eventually(t, 30*time.Second, "the page through the forwarded port", func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			page = string(b)
			return strings.Contains(page, "hello from cradle pod clistream")
		})
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("port-forward after Ctrl-C: %v (stderr %s)", err, stderr.String())
		}
	})

	t.Run("stats -o json", func(t *testing.T) {
		out, err := cradle("stats", "-o", "json", webID).Output()
		if err != nil {
			t.Fatalf("stats: %v", exitDetail(err))
		}
		var doc struct {
			Stats []struct {
				Attributes struct {
					ID       string `json:"id"`
					Metadata struct {
						Name string `json:"name"`
					} `json:"metadata"`
				} `json:"attributes"`
				CPU struct {
					UsageCoreNanoSeconds struct {
						Value string `json:"value"`
					} `json:"usageCoreNanoSeconds"`
				} `json:"cpu"`
				Memory struct {
					WorkingSetBytes struct {
						Value string `json:"value"`
					} `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(doc.Stats) != 1 || doc.Stats[0].Attributes.ID != webID || doc.Stats[0].Attributes.Metadata.Name != "web" {
			t.Fatalf("stats of %s: %s", webID, out)
		}
		if cpu, _ := strconv.ParseUint(doc.Stats[0].CPU.UsageCoreNanoSeconds.Value, 10, 64); cpu == 0 {
			t.Errorf("no CPU time for a running web server: %s", out)
		}
		if mem, _ := strconv.ParseUint(doc.Stats[0].Memory.WorkingSetBytes.Value, 10, 64); mem == 0 {
			t.Errorf("no memory for a running web server: %s", out)
		}
		// The table lists both running containers by name.
		table, err := cradle("stats", "-s", "0").Output()
		if err != nil {
			t.Fatalf("stats table: %v", exitDetail(err))
		}
		if e := contains(string(table), "CONTAINER", "CPU %", webID[:13], "web", readerID[:13], "reader"); e != nil {
			t.Error(e)
		}
	})

	t.Run("statsp -o json", func(t *testing.T) {
		out, err := cradle("statsp", "-o", "json", podID[:12]).Output()
		if err != nil {
			t.Fatalf("statsp: %v", exitDetail(err))
		}
		var doc struct {
			Stats []struct {
				Attributes struct {
					ID string `json:"id"`
				} `json:"attributes"`
				Linux struct {
					Memory struct {
						WorkingSetBytes struct {
							Value string `json:"value"`
						} `json:"workingSetBytes"`
					} `json:"memory"`
				} `json:"linux"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(doc.Stats) != 1 || doc.Stats[0].Attributes.ID != podID {
			t.Fatalf("statsp of %s: %s", podID, out)
		}
		if mem, _ := strconv.ParseUint(doc.Stats[0].Linux.Memory.WorkingSetBytes.Value, 10, 64); mem == 0 {
			t.Errorf("no memory for a pod running a web server: %s", out)
		}
	})

	t.Run("events", func(t *testing.T) {
		cmd := cradle("events", "-o", "go-template", "--template", "{{.containerId}} {{.containerEventType}}")
		out := &ptyReader{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// Nothing says when the stream is subscribed: run short-lived
		// containers until one's whole life shows up.
		var id string
		for i := 0; id == ""; i++ {
			if i == 10 {
				t.Fatalf("no container events after %d containers:\n%s", i, out.String())
			}
			cid, err := d.Runtime.CreateContainer(ctx, podID, containerConfig(fmt.Sprint("ev", i), imageName, "true"), pod)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Runtime.StartContainer(ctx, cid); err != nil {
				t.Fatal(err)
			}
			waitState(t, d, cid, runtimeapi.ContainerState_CONTAINER_EXITED)
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) && !strings.Contains(out.String(), cid+" CONTAINER_CREATED_EVENT") {
				time.Sleep(20 * time.Millisecond)
			}
			if strings.Contains(out.String(), cid+" CONTAINER_CREATED_EVENT") {
				id = cid
			}
		}
		eventually(t, 10*time.Second, "the started and stopped events", func() bool {
			s := out.String()
			return strings.Contains(s, id+" CONTAINER_STARTED_EVENT") && strings.Contains(s, id+" CONTAINER_STOPPED_EVENT")
		})
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("events after Ctrl-C: %v\n%s", err, out.String())
		}
	})
}

func exitDetail(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return fmt.Sprintf("%v: %s", err, exitErr.Stderr)
	}
	return fmt.Sprint(err)
}

// ptyReader collects what a child process prints, safe to read while written.
type ptyReader struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (r *ptyReader) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *ptyReader) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func (r *ptyReader) drain(f *os.File) { _, _ = io.Copy(r, f) }

// waitFor polls until the output contains want, running poke before each
// look; it fails with the output so far.
func (r *ptyReader) waitFor(t *testing.T, want string, poke func()) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if poke != nil {
			poke()
		}
		if strings.Contains(r.String(), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within 30s:\n%q", want, r.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openPTY allocates a pseudo-terminal pair through /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func setWinsize(t *testing.T, f *os.File, cols, rows uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
}
