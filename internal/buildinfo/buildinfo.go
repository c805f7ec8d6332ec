package buildinfo

import "runtime/debug"

// Version is set at link time; when it is not, the module version recorded by
// the Go toolchain is used, and "devel" when there is none.
var Version = ""

// String returns the version to print.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
