// Command demoweb is the demo pod's web server: a static Go program that
// answers every request with a greeting naming the pod, and logs each request
// to stdout so `cradle logs` has something to show.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	addr := ":8080"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	host, _ := os.Hostname()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("%s %s from %s\n", r.Method, r.URL.Path, r.RemoteAddr)
		fmt.Fprintf(w, "hello from cradle pod %s\n", host)
	})
	fmt.Println("demoweb listening on", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
