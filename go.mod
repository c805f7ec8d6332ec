module github.com/spacelift-io/tollgate

go 1.26.8
