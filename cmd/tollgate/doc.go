// Command tollgate runs the registry proxy, the token refresher, the allowlist
// check and the operator tools. Each subcommand lives in its own file here and
// only parses flags; the work is done by the packages it calls.
package main
