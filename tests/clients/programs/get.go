// GET a URL with Go's net/http, proxies from the environment (the default transport), and
// print the body, or the error as Go words it.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	response, err := http.Get(os.Args[1])
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
