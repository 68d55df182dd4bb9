module example.com/orchardconsumer

go 1.26.0

require github.com/orchard-ml/orchard v0.0.0

require golang.org/x/sys v0.50.0 // indirect

// The go tool builds this module against the checkout two directories up; Bazel uses
// MODULE.bazel's local_path_override instead and never reads this file.
replace github.com/orchard-ml/orchard => ../..
