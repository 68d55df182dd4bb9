module github.com/orchard-ml/orchard

go 1.26.0

require (
	codeberg.org/sbinet/npyio v0.14.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/fx v1.24.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/campoy/embedmd v1.0.0 // indirect
	github.com/nlpodyssey/gopickle v0.3.0 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	go.uber.org/dig v1.19.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.uber.org/zap v1.26.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.34.0 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)
