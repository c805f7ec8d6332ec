// Command docker-credential-tollgate is the docker credential helper: ECR
// registry tokens minted from the host's AWS credentials and cached, and
// logins from the docker config directory for every other registry. It only
// wires the packages together; see credhelper and ecr.
package main
