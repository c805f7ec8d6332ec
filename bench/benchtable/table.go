package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Names of the benchmarks the table reads (bench/proxy and bench/ecrhelper).
const (
	proxyPrefix  = "BenchmarkProxyPull/"
	helperPrefix = "BenchmarkHelperWarmGet/"
	coldGroup    = proxyPrefix + "cold/"
	warmGroup    = proxyPrefix + "warm/"
)

// Targets (BENCHMARKS.md, issue 10).
const (
	coldMaxOverDirect  = 0.05 // cold within 5 % of direct
	warmMaxOverFastest = 1.10 // warm within 1.10x of the faster yardstick
	maxGetsPerBlob     = 1.0
	maxPeakRSSMiB      = 100.0
)

// column is one tollgate measured: its label (the NAME of -tollgate
// NAME=PATH or -helper NAME=PATH) and its sub-benchmark name in the proxy
// benchmarks (tollgate, or tollgate-NAME).
type column struct{ label, proxy string }

func (rs *results) columns() []column {
	var cols []column
	add := func(label, proxy string) {
		i := slices.IndexFunc(cols, func(c column) bool { return c.label == label })
		switch {
		case i < 0:
			cols = append(cols, column{label, proxy})
		case cols[i].proxy == "":
			cols[i].proxy = proxy
		}
	}
	for _, name := range rs.order {
		if rest, ok := strings.CutPrefix(name, proxyPrefix); ok {
			parts := strings.Split(rest, "/")
			if len(parts) != 2 {
				continue
			}
			if parts[1] == "tollgate" {
				add("tollgate", parts[1])
			} else if label, ok := strings.CutPrefix(parts[1], "tollgate-"); ok {
				add(label, parts[1])
			}
		} else if rest, ok := strings.CutPrefix(name, helperPrefix); ok {
			if _, label, ok := strings.Cut(rest, "/"); ok {
				add(label, "")
			}
		}
	}
	return cols
}

// concurrentGroup is the group of the concurrent cold pulls
// (BenchmarkProxyPull/cold-20clients/) and its number of clients.
func (rs *results) concurrentGroup() (group, clients string) {
	for _, name := range rs.order {
		rest, ok := strings.CutPrefix(name, proxyPrefix+"cold-")
		if n, _, ok2 := strings.Cut(rest, "clients/"); ok && ok2 {
			return proxyPrefix + "cold-" + n + "clients/", n
		}
	}
	return "", "20"
}

// helperSources are the credential sources the helper lines cover, in order.
func (rs *results) helperSources() []string {
	var out []string
	for _, name := range rs.order {
		if rest, ok := strings.CutPrefix(name, helperPrefix); ok {
			if src, _, ok := strings.Cut(rest, "/"); ok && !slices.Contains(out, src) {
				out = append(out, src)
			}
		}
	}
	return out
}

// cell is one figure of the table with its verdict ("" when it has no
// target or was not measured).
type cell struct{ text, verdict string }

func (c cell) String() string {
	if c.verdict == "" {
		return c.text
	}
	return c.text + " — " + c.verdict
}

var notRun = cell{text: "not run"}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**NOT met**"
}

func seconds(ns float64) string { return fmt.Sprintf("%.3f s", ns/1e9) }

// render prints the targets table, then the medians of every benchmark read.
func render(w io.Writer, rs *results) error {
	cols := rs.columns()
	if len(cols) == 0 {
		return errors.New("no results of a tollgate (BenchmarkProxyPull/.../tollgate[-NAME] or BenchmarkHelperWarmGet/SOURCE/NAME) in the input")
	}
	group, clients := rs.concurrentGroup()
	type row struct {
		target string
		cell   func(c column) cell
	}
	rows := []row{
		{"cold pull over the link, vs direct (within 5 %)", rs.coldCell},
		{"warm pull, verifying client, vs the faster bare yardstick (within 1.10x)", rs.warmCell},
		{"proxy CPU per warm GiB, verifying client (reported beside distribution's)", rs.warmCPUCell},
		{clients + " concurrent cold clients: upstream GETs per blob, worst run (1)", func(c column) cell { return rs.getsCell(group, c) }},
		{clients + " concurrent cold clients: peak RSS of the proxy, worst run (< 100 MiB)", func(c column) cell { return rs.rssCell(group, c) }},
	}
	for _, src := range rs.helperSources() {
		rows = append(rows, row{"helper warm `get`, " + src + ", median (no slower than " + cols[0].label + ")",
			func(c column) cell { return rs.helperCell(src, cols[0], c) }})
	}

	fmt.Fprint(w, "| target |")
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c.label)
	}
	fmt.Fprint(w, "\n| --- |")
	for range cols {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |", r.target)
		for _, c := range cols {
			fmt.Fprintf(w, " %s |", r.cell(c))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "\nMedians of every benchmark read (n = samples):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| benchmark | n | time | other metrics |")
	fmt.Fprintln(w, "| --- | ---: | ---: | --- |")
	for _, name := range rs.order {
		byUnit := rs.samples[name]
		n := 0
		var units []string
		for u, v := range byUnit {
			n = max(n, len(v))
			if u != "ns/op" {
				units = append(units, u)
			}
		}
		slices.Sort(units)
		t := "–"
		if v := byUnit["ns/op"]; len(v) > 0 {
			t = seconds(median(v))
		}
		var other []string
		for _, u := range units {
			other = append(other, fmt.Sprintf("%.4g %s", median(byUnit[u]), u))
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s |\n", strings.TrimPrefix(name, "Benchmark"), n, t, strings.Join(other, ", "))
	}
	return nil
}

func (rs *results) coldCell(c column) cell {
	t, d := rs.get(coldGroup+c.proxy, "ns/op"), rs.get(coldGroup+"direct", "ns/op")
	if c.proxy == "" || len(t) == 0 || len(d) == 0 {
		return notRun
	}
	over := median(t)/median(d) - 1
	return cell{fmt.Sprintf("%+.1f %% (%s vs %s, n=%d/%d)", over*100, seconds(median(t)), seconds(median(d)), len(t), len(d)),
		verdict(over <= coldMaxOverDirect)}
}

func (rs *results) warmCell(c column) cell {
	t := rs.get(warmGroup+c.proxy, "ns/op")
	if c.proxy == "" || len(t) == 0 {
		return notRun
	}
	fastest, fastestName := 0.0, ""
	for _, y := range []string{"sendfile", "write"} {
		if v := rs.get(warmGroup+y, "ns/op"); len(v) > 0 && (fastestName == "" || median(v) < fastest) {
			fastest, fastestName = median(v), y
		}
	}
	if fastestName == "" {
		return cell{text: "no yardstick run"}
	}
	ratio := median(t) / fastest
	return cell{fmt.Sprintf("%.2fx (%s vs %s %s, n=%d)", ratio, seconds(median(t)), fastestName, seconds(fastest), len(t)),
		verdict(ratio <= warmMaxOverFastest)}
}

func (rs *results) warmCPUCell(c column) cell {
	v := rs.get(warmGroup+c.proxy, "server-CPU-ms/GiB")
	if c.proxy == "" || len(v) == 0 {
		return notRun
	}
	text := fmt.Sprintf("%.0f ms", median(v))
	if d := rs.get(warmGroup+"distribution", "server-CPU-ms/GiB"); len(d) > 0 {
		text += fmt.Sprintf(" (distribution 2.8: %.0f ms)", median(d))
	}
	return cell{text: text}
}

func (rs *results) getsCell(group string, c column) cell {
	v := rs.get(group+c.proxy, "upstream-GETs/blob")
	if group == "" || c.proxy == "" || len(v) == 0 {
		return notRun
	}
	worst := slices.Max(v)
	return cell{fmt.Sprintf("%.2f (n=%d)", worst, len(v)), verdict(worst <= maxGetsPerBlob)}
}

func (rs *results) rssCell(group string, c column) cell {
	v := rs.get(group+c.proxy, "peak-RSS-MiB")
	if group == "" || c.proxy == "" || len(v) == 0 {
		return notRun
	}
	worst := slices.Max(v)
	return cell{fmt.Sprintf("%.1f MiB (n=%d)", worst, len(v)), verdict(worst < maxPeakRSSMiB)}
}

func (rs *results) helperCell(src string, base, c column) cell {
	v := rs.get(helperPrefix+src+"/"+c.label, "median-ms")
	if len(v) == 0 {
		return notRun
	}
	text := fmt.Sprintf("%.2f ms", median(v))
	if c.label == base.label {
		return cell{text: text}
	}
	b := rs.get(helperPrefix+src+"/"+base.label, "median-ms")
	if len(b) == 0 {
		return cell{text: text}
	}
	ratio := median(v) / median(b)
	return cell{fmt.Sprintf("%s (%.3fx %s)", text, ratio, base.label), verdict(ratio <= 1)}
}
