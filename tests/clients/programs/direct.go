// GET a URL with Go's net/http and a transport that never uses a proxy (Proxy: nil), as
// programs with their own transport do, and print the body, or the error as Go words it. Built
// with CGO_ENABLED=0: a statically linked binary with Go's own resolver (it reads
// /etc/resolv.conf and asks the nameserver itself).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	response, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	if response.StatusCode != 200 {
		fmt.Println(response.Status)
		os.Exit(1)
	}
	fmt.Print(string(body))
}
