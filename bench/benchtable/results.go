package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results holds every sample of the benchmark lines read, by benchmark name
// and unit. Names are normalised: go test's GOMAXPROCS suffix (-2) and its
// suffix for a name repeated in later rounds (#01) are dropped, so the
// rounds of one scenario are samples of one name.
type results struct {
	samples map[string]map[string][]float64
	order   []string // names in the order first seen
}

var (
	procsSuffix  = regexp.MustCompile(`-[0-9]+$`)
	repeatSuffix = regexp.MustCompile(`#[0-9]+$`)
)

// read adds the benchmark lines of r ("BenchmarkName N value unit value
// unit ..."); other lines (logs, headers, PASS) are skipped.
func (rs *results) read(r io.Reader) error {
	if rs.samples == nil {
		rs.samples = map[string]map[string][]float64{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || len(f)%2 != 0 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		values := map[string]float64{}
		ok := true
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			values[f[i+1]] = v
		}
		if !ok {
			continue
		}
		name := repeatSuffix.ReplaceAllString(procsSuffix.ReplaceAllString(f[0], ""), "")
		byUnit := rs.samples[name]
		if byUnit == nil {
			byUnit = map[string][]float64{}
			rs.samples[name] = byUnit
			rs.order = append(rs.order, name)
		}
		for unit, v := range values {
			byUnit[unit] = append(byUnit[unit], v)
		}
	}
	return sc.Err()
}

// get returns the samples of name in unit.
func (rs *results) get(name, unit string) []float64 { return rs.samples[name][unit] }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
