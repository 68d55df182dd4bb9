package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	root := flag.String("root", ".", "repository root (the directory holding MODULE.bazel)")
	flag.Parse()
	findings, err := Check(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildcheck:", err)
		os.Exit(2)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	if len(findings) > 0 {
		fmt.Printf("buildcheck: %d finding(s)\n", len(findings))
		os.Exit(1)
	}
	fmt.Println("buildcheck: every include is a declared input, no include path climbs out of its package, no flag conflicts with Apple's toolchain, every source is in a target, every external repository a BUILD file names is visible from MODULE.bazel")
}
