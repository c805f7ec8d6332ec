// Package helperlog builds the logger of the short-lived credential helper
// processes (docker-credential-tollgate and the `tollgate ecr-token` it runs
// on a cache miss) from their environment, so both log alike.
package helperlog
