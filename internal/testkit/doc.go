// Package testkit builds OCI images in-process and serves them from an
// in-process registry on 127.0.0.1, so cradle's tests, demos and benchmarks
// need no network beyond loopback.
//
// Core functions return errors because demo programs and benchmarks use them
// outside `go test`; the Must* helpers and NewRegistry take a testing.TB,
// fail the test on error and register cleanup.
//
//	r := testkit.NewRegistry(t, testkit.WithBasicAuth("u", "p"))
//	img := testkit.MustBusyboxImage(t, testkit.ImageConfig{Cmd: []string{"sleep", "60"}})
//	digest := r.MustPush(t, "library/busybox:latest", img)
//	ref := r.Ref("library/busybox:latest") // "127.0.0.1:PORT/library/busybox:latest"
//
// Layers are deterministic (fixed timestamps, no names in gzip headers), so
// equal inputs give equal digests across runs.
//
// Faults are HTTP middleware (type Fault) around the registry's handler: they
// can answer requests themselves (FailStatus, FailTimes, FaultFunc) or wrap
// the real response (CorruptBlob, StallBlob, SlowBlob). Registry.Requests
// counts what clients asked for, for de-duplication tests.
package testkit
