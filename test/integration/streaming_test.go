package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// spdyConnect upgrades a streaming URL the way kubectl does.
func spdyConnect(t *testing.T, url, protocol string) httpstream.Connection {
	t.Helper()
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newStream(t *testing.T, conn httpstream.Connection, kv ...string) httpstream.Stream {
	t.Helper()
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	s, err := conn.CreateStream(h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// remoteStatus is the v4 remotecommand status on the error stream.
type remoteStatus struct {
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Details struct {
		Causes []struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"causes"`
	} `json:"details"`
}

// runExec runs an exec URL without tty: stdin (if any) is sent and closed;
// it returns stdout, stderr and the exit code read from the error stream.
func runExec(t *testing.T, url, stdin string) (string, string, string) {
	t.Helper()
	conn := spdyConnect(t, url, "v4.channel.k8s.io")
	errStream := newStream(t, conn, "streamType", "error")
	errStream.Close() // the client never writes to it
	var in httpstream.Stream
	if stdin != "" {
		in = newStream(t, conn, "streamType", "stdin")
	}
	outStream := newStream(t, conn, "streamType", "stdout")
	errOut := newStream(t, conn, "streamType", "stderr")
	if in != nil {
		if _, err := io.WriteString(in, stdin); err != nil {
			t.Fatal(err)
		}
		in.Close()
	}
	outC, errC := make(chan []byte, 1), make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(outStream); outC <- b }()
	go func() { b, _ := io.ReadAll(errOut); errC <- b }()
	st, _ := io.ReadAll(errStream)
	code := "0"
	if len(st) > 0 {
		var s remoteStatus
		if err := json.Unmarshal(st, &s); err != nil {
			t.Fatalf("error stream %q: %v", st, err)
		}
		if s.Status == "Success" {
			return string(<-outC), string(<-errC), code
		}
		if s.Reason != "NonZeroExitCode" || len(s.Details.Causes) != 1 || s.Details.Causes[0].Reason != "ExitCode" {
			t.Fatalf("exec failed: %+v", s)
		}
		code = s.Details.Causes[0].Message
	}
	return string(<-outC), string(<-errC), code
}

func TestExecAttachPortForwardThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	web := testkit.MustGoBinaryLayer(t, "github.com/cradle-runtime/cradle/hack/demoweb", "/usr/bin/demoweb", testkit.Gzip)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	img := testkit.MustImage(t, testkit.ImageConfig{Entrypoint: []string{"/usr/bin/demoweb"}, Cmd: []string{":8080"}}, base, web)
	if _, err := reg.Push("it/stream:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/stream:1")

	d, pod, podID, _ := podWithImage(t, "stream", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})
	webID, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("web", imageName), pod)
	if err != nil {
		t.Fatal(err)
	}
	// Prints to stdout and stderr five times a second, for attach.
	tickCfg := containerConfig("tick", imageName, "sh", "-c", `i=0; while true; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.2; done`)
	tickID, err := d.Runtime.CreateContainer(ctx, podID, tickCfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{webID, tickID} {
		if err := d.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	}

	t.Run("exec output and exit codes", func(t *testing.T) {
		resp, err := d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: webID, Cmd: []string{"echo", "hi"}, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := runExec(t, resp.Url, ""); out != "hi\n" || errOut != "" || code != "0" {
			t.Errorf("echo hi: out %q err %q code %s", out, errOut, code)
		}
		// The URL is single-use.
		if r, err := http.Post(resp.Url, "text/plain", nil); err == nil {
			r.Body.Close()
			if r.StatusCode != http.StatusNotFound {
				t.Errorf("reused exec URL answered %s", r.Status)
			}
		}

		resp, err = d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: webID,
			Cmd: []string{"sh", "-c", "cat; echo oops >&2; exit 3"}, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := runExec(t, resp.Url, "from stdin"); out != "from stdin" || errOut != "oops\n" || code != "3" {
			t.Errorf("exit 3: out %q err %q code %s", out, errOut, code)
		}
	})

	t.Run("exec tty", func(t *testing.T) {
		resp, err := d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: webID,
			Cmd: []string{"sh", "-c", "[ -t 1 ] && echo is-a-tty; exit 5"}, Tty: true, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		conn := spdyConnect(t, resp.Url, "v4.channel.k8s.io")
		errStream := newStream(t, conn, "streamType", "error")
		errStream.Close()
		out := newStream(t, conn, "streamType", "stdout")
		resize := newStream(t, conn, "streamType", "resize")
		defer resize.Close()
		b, _ := io.ReadAll(out)
		st, _ := io.ReadAll(errStream)
		if !strings.Contains(string(b), "is-a-tty") || !strings.Contains(string(st), `"message":"5"`) {
			t.Errorf("tty exec: out %q status %s", b, st)
		}
	})

	t.Run("attach reads output", func(t *testing.T) {
		resp, err := d.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: tickID, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		conn := spdyConnect(t, resp.Url, "v4.channel.k8s.io")
		errStream := newStream(t, conn, "streamType", "error")
		errStream.Close()
		out := bufio.NewReader(newStream(t, conn, "streamType", "stdout"))
		errOut := bufio.NewReader(newStream(t, conn, "streamType", "stderr"))
		lines := make(chan string, 2)
		go func() { l, _ := out.ReadString('\n'); lines <- "out:" + l }()
		go func() { l, _ := errOut.ReadString('\n'); lines <- "err:" + l }()
		var got []string
		timeout := time.After(20 * time.Second)
		for len(got) < 2 {
			select {
			case l := <-lines:
				got = append(got, l)
			case <-timeout:
				t.Fatalf("attach: only got %q", got)
			}
		}
		joined := strings.Join(got, "|")
		if !strings.Contains(joined, "out:tick ") || !strings.Contains(joined, "err:tock ") {
			t.Errorf("attach got %q", got)
		}
	})

	t.Run("port forward", func(t *testing.T) {
		resp, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{8080}})
		if err != nil {
			t.Fatal(err)
		}
		conn := spdyConnect(t, resp.Url, "portforward.k8s.io")
		var page string
		// The web server may take a moment to listen; each try is a new
		// request on the same connection.
		eventually(t, 20*time.Second, "the page through port forward", func() bool {
			page = forwardGet(t, conn)
			return strings.Contains(page, "hello from cradle pod stream")
		})
	})

	t.Run("bad requests", func(t *testing.T) {
		_, err := d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "nope", Cmd: []string{"true"}, Stdout: true})
		if status.Code(err) != codes.NotFound {
			t.Errorf("exec in unknown container: %v", err)
		}
		_, err = d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: webID, Stdout: true})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("exec without cmd: %v", err)
		}
		_, err = d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: webID, Cmd: []string{"true"}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("exec without streams: %v", err)
		}
		_, err = d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{70000}})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("port forward to port 70000: %v", err)
		}
		_, err = d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "nope", Port: []int32{80}})
		if status.Code(err) != codes.NotFound {
			t.Errorf("port forward to unknown pod: %v", err)
		}
	})
}

var forwardRequest int

// forwardGet sends one HTTP request over a new port-forward stream pair.
func forwardGet(t *testing.T, conn httpstream.Connection) string {
	t.Helper()
	forwardRequest++
	id := fmt.Sprint(forwardRequest)
	errStream := newStream(t, conn, "streamType", "error", "port", "8080", "requestID", id)
	errStream.Close()
	data := newStream(t, conn, "streamType", "data", "port", "8080", "requestID", id)
	defer data.Close()
	if _, err := io.WriteString(data, "GET / HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return ""
	}
	b, _ := io.ReadAll(data)
	if e, _ := io.ReadAll(errStream); len(e) > 0 {
		t.Logf("port forward error: %s", e)
	}
	return string(b)
}
