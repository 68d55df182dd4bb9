// Command orchard-step runs one forward and backward through Orchard's engine and prints
// which executor ran and how far its results are from the exact reference:
//
//	bazel run //cmd/orchard-step
package main

import (
	"context"
	"fmt"
	"os"

	"example.com/orchardconsumer/step"
)

func main() {
	res, err := step.Run(context.Background(), 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orchard-step:", err)
		os.Exit(1)
	}
	fmt.Printf("calls %v; max |engine - reference| over O, dQ, dK, dV = %.3g\n", res.Calls, res.MaxDiff)
	if res.MaxDiff > 1e-4 {
		os.Exit(1)
	}
}
