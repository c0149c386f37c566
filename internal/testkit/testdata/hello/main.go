// Command hello is a tiny static program for images built by tests: it prints
// a greeting and its arguments, and exits with the code given by $HELLO_EXIT.
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	fmt.Println("hello from testkit")
	if len(os.Args) > 1 {
		fmt.Println(strings.Join(os.Args[1:], " "))
	}
	if code, err := strconv.Atoi(os.Getenv("HELLO_EXIT")); err == nil {
		os.Exit(code)
	}
}
