package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: benchtable FILE... (go test -bench output of bench/proxy, bench/ecrhelper -benchfmt output; - for stdin)")
		os.Exit(2)
	}
	var rs results
	for _, name := range os.Args[1:] {
		if err := readFile(&rs, name); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
	}
	if err := render(os.Stdout, &rs); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func readFile(rs *results, name string) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := rs.read(r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
