module github.com/spacelift-io/tollgate

go 1.26.8

require github.com/docker/docker-credential-helpers v0.9.13 // indirect
