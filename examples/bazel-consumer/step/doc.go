// Package step runs one attention training step — forward, then backward from a random
// upstream gradient — through Orchard's engine, and holds the result against Orchard's
// exact reference. It exists to show, and to test, that another Bazel module can build
// against Orchard's public targets.
package step
