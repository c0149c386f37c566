// Package stream serves CRI Exec, Attach and PortForward: it runs the HTTP
// streaming server (k8s.io/cri-streaming) whose single-use URLs the CRI
// RPCs hand out, and implements the server's Runtime over cradle's
// containers and pods.
package stream
