// Package credhelper answers docker credential helper requests: ECR hosts
// through the ecr token engine, every other registry from the logins in the
// docker config directory named by SPACELIFT_DOCKER_CONFIG_DIR.
package credhelper
