module github.com/spacelift-io/tollgate

go 1.26.8

require (
	github.com/distribution/reference v0.6.0
	go.yaml.in/yaml/v3 v3.0.6
)

require github.com/opencontainers/go-digest v1.0.0
