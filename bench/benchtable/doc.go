// Command benchtable reads the output of the proxy benchmarks
// (bench/proxy, BenchmarkProxyPull) and of bench/ecrhelper -benchfmt and
// prints the targets of BENCHMARKS.md as one table, one column per tollgate
// measured (the NAME of -tollgate NAME=PATH, and of -helper NAME=PATH):
//
//   - cold pull through tollgate against the direct pull over the same link,
//     medians (target: within 5 %);
//   - warm pull with a verifying client against the faster of the two bare
//     yardsticks, sendfile and write(2), medians (target: within 1.10x),
//     with the proxy's CPU per warm GiB beside distribution's;
//   - upstream GETs per blob and peak RSS with concurrent cold clients,
//     worst run (targets: 1, and under 100 MiB);
//   - the credential helper's warm `get`, median, against the first column
//     (target: no slower).
//
// Figures without a target (the yardsticks, the client that does not hash)
// follow as information. bench/compare.sh runs it; by hand:
//
//	go run ./bench/benchtable proxy-cold.txt proxy-warm.txt helper.txt
package main
