package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// notifier speaks systemd's sd_notify protocol: one datagram per state
// change to $NOTIFY_SOCKET. It is a few lines, so it is ours rather than a
// library's, and it must take the variables out of the environment before
// anything is exec'd: runc seeing NOTIFY_SOCKET would hand the socket to
// the container and wait for the container's own READY=1.
type notifier struct {
	socket   string        // "" = not started by systemd with Type=notify
	watchdog time.Duration // WATCHDOG_USEC, 0 = no watchdog
	log      *slog.Logger
}

// takeNotifyEnv reads and unsets NOTIFY_SOCKET, WATCHDOG_USEC and
// WATCHDOG_PID.
func takeNotifyEnv(log *slog.Logger) *notifier {
	n := &notifier{socket: os.Getenv("NOTIFY_SOCKET"), log: log}
	if usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		// WATCHDOG_PID, when set, says which process the watchdog is for.
		if pid := os.Getenv("WATCHDOG_PID"); pid == "" || pid == strconv.Itoa(os.Getpid()) {
			n.watchdog = time.Duration(usec) * time.Microsecond
		}
	}
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		_ = os.Unsetenv(v)
	}
	return n
}

// send sends one notification; without a socket it does nothing. A
// failure is logged, never fatal: the daemon serves kubelet either way.
func (n *notifier) send(state string) {
	if n == nil || n.socket == "" {
		return
	}
	addr := n.socket
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err == nil {
		_, err = conn.Write([]byte(state))
		conn.Close()
	}
	if err != nil {
		n.log.Warn("cannot notify the service manager", "socket", n.socket, "state", state, "err", err)
	}
}

// reloading tells systemd a reload began; MONOTONIC_USEC lets systemd ≥
// 253 (Type=notify-reload) match it with the signal it sent.
func (n *notifier) reloading() {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	n.send(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000))
}

// runWatchdog pings WATCHDOG=1 every half watchdog interval while healthy
// answers nil, until ctx ends. A daemon that stops answering its own
// Status gets no ping, and systemd restarts it after WatchdogSec.
func (n *notifier) runWatchdog(ctx context.Context, healthy func(context.Context) error) {
	if n == nil || n.socket == "" || n.watchdog <= 0 {
		return
	}
	every := n.watchdog / 2
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		cctx, cancel := context.WithTimeout(ctx, every)
		err := healthy(cctx)
		cancel()
		switch {
		case err == nil:
			n.send("WATCHDOG=1")
			if failing {
				n.log.Info("health check passes again; watchdog pings resume")
			}
		case ctx.Err() != nil:
			return
		case !failing:
			n.log.Error("health check failed; the watchdog is not pinged, so systemd restarts the daemon if it stays so",
				"err", err, "watchdog", n.watchdog)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statusCheck asks the daemon's own CRI socket for Status, as kubelet
// does: healthy is an answer within ctx that says RuntimeReady.
func statusCheck(socket string) (check func(context.Context) error, closeFn func()) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return func(context.Context) error { return err }, func() {}
	}
	client := runtimeapi.NewRuntimeServiceClient(conn)
	return func(ctx context.Context) error {
		resp, err := client.Status(ctx, &runtimeapi.StatusRequest{})
		if err != nil {
			return fmt.Errorf("CRI Status: %w", err)
		}
		for _, c := range resp.GetStatus().GetConditions() {
			if c.GetType() == runtimeapi.RuntimeReady && !c.GetStatus() {
				return fmt.Errorf("RuntimeReady is false: %s %s", c.GetReason(), c.GetMessage())
			}
		}
		return nil
	}, func() { conn.Close() }
}
