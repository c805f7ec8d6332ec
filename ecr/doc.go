// Package ecr is the Amazon ECR token engine: it recognises ECR registry
// hosts in every AWS partition, mints registry tokens from the host's AWS
// credentials, and caches them in process and on disk, shared by every
// process of the user with a cross-process single flight.
package ecr
