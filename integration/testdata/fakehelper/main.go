// Command fakehelper is a real docker credential helper for the login tests.
// Installed as docker-credential-<name>, it serves one fixed login for the
// host in $FAKEHELPER_HOST ($FAKEHELPER_USER / $FAKEHELPER_SECRET), accepts
// store and erase, and appends every request ("<action> <stdin>") to
// $FAKEHELPER_LOG. Installed under a name containing "hang", it never
// answers, to test that tollgate kills a hanging helper.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Println("usage: docker-credential-fake get|store|erase|list")
		os.Exit(1)
	}
	action := os.Args[1]
	in, _ := io.ReadAll(os.Stdin)
	if log := os.Getenv("FAKEHELPER_LOG"); log != "" {
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%s %s %s\n", filepath.Base(os.Args[0]), action, strings.TrimSpace(string(in)))
			f.Close()
		}
	}
	if strings.Contains(filepath.Base(os.Args[0]), "hang") {
		time.Sleep(time.Hour)
	}
	host := os.Getenv("FAKEHELPER_HOST")
	switch action {
	case "get":
		if strings.TrimSpace(string(in)) != host {
			fmt.Println("credentials not found in native keychain")
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(map[string]string{
			"ServerURL": host, "Username": os.Getenv("FAKEHELPER_USER"), "Secret": os.Getenv("FAKEHELPER_SECRET"),
		})
	case "store", "erase":
	case "list":
		_ = json.NewEncoder(os.Stdout).Encode(map[string]string{host: os.Getenv("FAKEHELPER_USER")})
	default:
		fmt.Printf("unknown action %q\n", action)
		os.Exit(1)
	}
}
