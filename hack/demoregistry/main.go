// Command demoregistry builds cradle's demo images in-process (from Debian's
// busybox-static; no network) and serves them from a registry on 127.0.0.1.
// It prints the registry host (127.0.0.1:PORT) on the first line of stdout,
// then the image references (busybox, then a web server built from
// hack/demoweb on top of busybox), and serves until SIGTERM/SIGINT.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demoregistry:", err)
		os.Exit(1)
	}
}

func run() error {
	reg, err := testkit.StartRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()

	img, err := testkit.BusyboxImage(testkit.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		return err
	}
	if _, err := reg.Push("demo/busybox:latest", img); err != nil {
		return err
	}
	base, err := testkit.BusyboxLayer(testkit.Gzip)
	if err != nil {
		return err
	}
	web, err := testkit.GoBinaryLayer("github.com/cradle-runtime/cradle/hack/demoweb", "/usr/bin/demoweb", testkit.Gzip)
	if err != nil {
		return err
	}
	webImg, err := testkit.NewImage(testkit.ImageConfig{
		Entrypoint:   []string{"/usr/bin/demoweb"},
		Cmd:          []string{":8080"},
		ExposedPorts: []string{"8080/tcp"},
	}, base, web)
	if err != nil {
		return err
	}
	if _, err := reg.Push("demo/web:latest", webImg); err != nil {
		return err
	}
	fmt.Println(reg.Host)
	fmt.Println(reg.Ref("demo/busybox:latest"))
	fmt.Println(reg.Ref("demo/web:latest"))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}
