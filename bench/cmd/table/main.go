// Command table turns the combined `go test -bench -benchmem` output of every benchmark
// `make bench` runs (read from stdin: several packages and modules, -count N) into ONE
// Markdown table, with a section per benchmark group. Every figure is the median of its
// samples.
//
//	make bench                       # runs everything, then this
//	go run ./cmd/table < ../bench.out
//
// Two kinds of sections:
//
//   - Client comparisons. A benchmark whose last name element is a known client
//     (go-redis, rconn, rconn-autopipeline, go-redis-autopipeliner, rueidis,
//     redis-benchmark-P16) is a cell of a comparison: Benchmark<Group>[_suffix]/<case...>/<client>.
//     Rows are cases, columns clients, cells ops/s with the ratio to go-redis; rconn-autopipeline
//     is also compared with redis-benchmark -P 16 (the server-bound limit) where both ran;
//     the last column is allocs/op per client. bench's ProxyHop rows (clients direct, haproxy,
//     rconn-proxy) compare with haproxy where it ran, else with direct, and add rconn-proxy ×
//     direct and the hop process's CPU per command. A case element PIPE<n> means n commands per op
//     (ops/s counts commands). Benchmark functions Clients and Clients_redisBenchmark share
//     one section.
//   - Everything else, e.g. test/scale's s-to-ready or pkg/client's ms-p99: one row per
//     benchmark, one column per reported unit (custom metrics first, then ns/op, B/op,
//     allocs/op).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// clients are the comparison columns, in order.
var clients = []string{"go-redis", "rconn", "rconn-autopipeline", "go-redis-autopipeliner", "rueidis", "redis-benchmark-P16", "direct", "haproxy", "rconn-proxy"}

// abbrev shortens client names in the headers of the per-client lists.
var abbrev = map[string]string{"rconn-autopipeline": "rconn-ap", "go-redis-autopipeliner": "go-redis-ap", "redis-benchmark-P16": "rb-P16"}

const (
	baseline    = "go-redis"
	hopRef      = "haproxy"     // the reference of bench's ProxyHop rows that have it
	hopDirect   = "direct"      // ... and of those that do not (cluster: HAProxy has no cluster mode)
	hopProxy    = "rconn-proxy" // compared with both
	autopipe    = "rconn-autopipeline"
	serverLimit = "redis-benchmark-P16"
	modulePath  = "github.com/rconn-dev/redis-connection-operator"
)

var (
	benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	pkgLine   = regexp.MustCompile(`^pkg:\s+(\S+)`)
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}

// metrics are the samples of one benchmark: unit -> values, units in first-seen order.
type metrics struct {
	units  []string
	values map[string][]float64
}

func (m *metrics) add(unit string, v float64) {
	if m.values == nil {
		m.values = map[string][]float64{}
	}
	if _, ok := m.values[unit]; !ok {
		m.units = append(m.units, unit)
	}
	m.values[unit] = append(m.values[unit], v)
}

func (m *metrics) median(unit string) (float64, bool) {
	v := m.values[unit]
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

func (m *metrics) samples() int {
	n := 0
	for _, v := range m.values {
		n = max(n, len(v))
	}
	return n
}

// section is one group of benchmarks.
type section struct {
	title   string
	compare bool
	rows    []string                       // cases (compare) or benchmark names (generic), first-seen order
	cells   map[string]*metrics            // row -> metrics (generic)
	byCase  map[string]map[string]*metrics // case -> client -> metrics (compare)
}

func (s *section) row(r string) {
	if !slices.Contains(s.rows, r) {
		s.rows = append(s.rows, r)
	}
}

func parse(in io.Reader) ([]*section, error) {
	var sections []*section
	byTitle := map[string]*section{}
	get := func(title string, compare bool) *section {
		key := fmt.Sprintf("%v|%s", compare, title)
		s := byTitle[key]
		if s == nil {
			s = &section{title: title, compare: compare, cells: map[string]*metrics{}, byCase: map[string]map[string]*metrics{}}
			byTitle[key] = s
			sections = append(sections, s)
		}
		return s
	}
	pkg := ""
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if m := pkgLine.FindStringSubmatch(text); m != nil {
			pkg = strings.TrimPrefix(strings.TrimPrefix(m[1], modulePath), "/")
			if pkg == "" {
				pkg = "."
			}
			continue
		}
		m := benchLine.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		var ms metrics
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			ms.add(f[i+1], v)
		}
		if len(ms.units) == 0 {
			continue
		}
		parts := strings.Split(m[1], "/")
		group := parts[0]
		if i := strings.IndexByte(group, '_'); i > 0 {
			group = group[:i]
		}
		last := parts[len(parts)-1]
		if len(parts) >= 2 && slices.Contains(clients, last) {
			s := get(pkg+" "+group, true)
			cs := strings.Join(parts[1:len(parts)-1], "/")
			s.row(cs)
			if s.byCase[cs] == nil {
				s.byCase[cs] = map[string]*metrics{}
			}
			dst := s.byCase[cs][last]
			if dst == nil {
				dst = &metrics{}
				s.byCase[cs][last] = dst
			}
			for _, u := range ms.units {
				for _, v := range ms.values[u] {
					dst.add(u, v)
				}
			}
			continue
		}
		s := get(pkg+" "+group, false)
		name := strings.Join(parts[1:], "/")
		if name == "" {
			name = group
		}
		s.row(name)
		dst := s.cells[name]
		if dst == nil {
			dst = &metrics{}
			s.cells[name] = dst
		}
		for _, u := range ms.units {
			for _, v := range ms.values[u] {
				dst.add(u, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// The bench module's comparison first (the headline), then the other comparisons, then the
	// rest, each in the order they ran.
	rank := func(s *section) int {
		switch {
		case s.compare && strings.HasPrefix(s.title, "bench "):
			return 0
		case s.compare:
			return 1
		default:
			return 2
		}
	}
	slices.SortStableFunc(sections, func(a, b *section) int { return rank(a) - rank(b) })
	return sections, nil
}

func run(in io.Reader, out io.Writer) error {
	sections, err := parse(in)
	if err != nil {
		return err
	}
	if len(sections) == 0 {
		return fmt.Errorf("no benchmark lines in the input")
	}
	var rows [][]string // rows[0] is the header; a nil row is the delimiter
	for i, s := range sections {
		var r [][]string
		if s.compare {
			r = s.compareRows()
		} else {
			r = s.genericRows()
		}
		if i > 0 {
			for j := range r[0] {
				if r[0][j] != "" {
					r[0][j] = "**" + r[0][j] + "**"
				}
			}
		}
		rows = append(rows, r[0])
		if i == 0 {
			rows = append(rows, nil)
		}
		rows = append(rows, r[1:]...)
	}
	return write(out, rows)
}

// compareRows: header, then one row per case.
func (s *section) compareRows() [][]string {
	present := map[string]bool{}
	n := 0
	for _, byClient := range s.byCase {
		for c, m := range byClient {
			present[c] = true
			n = max(n, m.samples())
		}
	}
	var cols []string
	for _, c := range clients {
		if present[c] {
			cols = append(cols, c)
		}
	}
	withLimit := present[autopipe] && present[serverLimit]
	withDirect := present[hopProxy] && present[hopDirect]
	ref := baseline
	if !present[baseline] && present[hopProxy] {
		ref = hopRef + "; without it × " + hopDirect
	}
	head := []string{fmt.Sprintf("%s — ops/s (× %s), median of %d", s.title, ref, n)}
	head = append(head, cols...)
	if withLimit {
		head = append(head, autopipe+" × "+serverLimit)
	}
	if withDirect {
		head = append(head, hopProxy+" × "+hopDirect)
	}
	lists := s.lists(cols, present)
	var short []string
	for _, c := range cols {
		if a, ok := abbrev[c]; ok {
			c = a
		}
		short = append(short, c)
	}
	for _, l := range lists {
		head = append(head, l.label+" ("+strings.Join(short, " / ")+")")
	}
	out := [][]string{head}
	for _, cs := range s.rows {
		perOp := 1.0
		for _, p := range strings.Split(cs, "/") {
			if n, err := strconv.Atoi(strings.TrimPrefix(p, "PIPE")); strings.HasPrefix(p, "PIPE") && err == nil && n > 0 {
				perOp = float64(n)
			}
		}
		opsOf := func(c string) (float64, bool) {
			m := s.byCase[cs][c]
			if m == nil {
				return 0, false
			}
			ns, ok := m.median("ns/op")
			if !ok || ns <= 0 {
				return 0, false
			}
			return perOp * 1e9 / ns, true
		}
		base, hasBase := opsOf(baseline)
		baseName := baseline
		for _, c := range []string{hopRef, hopDirect} {
			if !hasBase {
				base, hasBase = opsOf(c)
				baseName = c
			}
		}
		row := []string{strings.ReplaceAll(cs, "/", " ")}
		for _, c := range cols {
			ops, ok := opsOf(c)
			switch {
			case !ok:
				row = append(row, "–")
			case c == baseName || !hasBase:
				row = append(row, thousands(ops))
			default:
				row = append(row, fmt.Sprintf("%s (%.2f)", thousands(ops), ops/base))
			}
		}
		if withLimit {
			ap, ok1 := opsOf(autopipe)
			lim, ok2 := opsOf(serverLimit)
			if ok1 && ok2 {
				row = append(row, fmt.Sprintf("%.2f", ap/lim))
			} else {
				row = append(row, "–")
			}
		}
		if withDirect {
			px, ok1 := opsOf(hopProxy)
			d, ok2 := opsOf(hopDirect)
			if ok1 && ok2 {
				row = append(row, fmt.Sprintf("%.2f", px/d))
			} else {
				row = append(row, "–")
			}
		}
		for _, l := range lists {
			var vals []string
			for _, c := range cols {
				v, ok := s.byCase[cs][c].medianOK(l.unit)
				switch {
				case !ok || (c == serverLimit && l.unit == "allocs/op"): // another process: the Go side's allocations say nothing
					vals = append(vals, "–")
				case l.unit == "allocs/op":
					vals = append(vals, strconv.FormatFloat(v, 'f', -1, 64))
				default:
					vals = append(vals, number(v))
				}
			}
			row = append(row, strings.Join(vals, " / "))
		}
		out = append(out, row)
	}
	return out
}

// list is a per-client list column: one unit's medians, one per client.
type list struct{ unit, label string }

// lists are the per-client lists the section has figures for: allocs/op, and the CPU figures
// bench/ reports.
func (s *section) lists(cols []string, present map[string]bool) []list {
	var lists []list
	for _, l := range []list{{"allocs/op", "allocs/op"}, {"client-us/cmd", "client CPU µs/cmd"}, {"server-us/cmd", "server CPU µs/cmd"}, {"hop-us/cmd", "hop CPU µs/cmd"}} {
		if l.unit == "allocs/op" && present[hopProxy] {
			continue // the hop is another process: the Go side's allocations are the client's
		}
		for _, byClient := range s.byCase {
			if slices.ContainsFunc(cols, func(c string) bool { _, ok := byClient[c].medianOK(l.unit); return ok }) {
				lists = append(lists, l)
				break
			}
		}
	}
	return lists
}

func (m *metrics) medianOK(unit string) (float64, bool) {
	if m == nil {
		return 0, false
	}
	return m.median(unit)
}

// builtin units go last, in this order.
var builtin = []string{"ns/op", "MB/s", "B/op", "allocs/op"}

// genericRows: header (benchmark, then every unit), then one row per benchmark.
func (s *section) genericRows() [][]string {
	var custom []string
	seen := map[string]bool{}
	n := 0
	for _, r := range s.rows {
		m := s.cells[r]
		n = max(n, m.samples())
		for _, u := range m.units {
			if !seen[u] && !slices.Contains(builtin, u) {
				custom = append(custom, u)
			}
			seen[u] = true
		}
	}
	units := custom
	for _, u := range builtin {
		if seen[u] {
			units = append(units, u)
		}
	}
	head := append([]string{fmt.Sprintf("%s — median of %d", s.title, n)}, units...)
	out := [][]string{head}
	for _, r := range s.rows {
		row := []string{r}
		for _, u := range units {
			if v, ok := s.cells[r].median(u); ok {
				row = append(row, number(v))
			} else {
				row = append(row, "–")
			}
		}
		out = append(out, row)
	}
	return out
}

// write prints rows as one Markdown table, padded so that it also reads in a terminal.
func write(out io.Writer, rows [][]string) error {
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	width := make([]int, cols)
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		b.WriteString("|")
		for i := range cols {
			c := ""
			if r == nil {
				c = strings.Repeat("-", max(3, width[i]))
			} else if i < len(r) {
				c = r[i]
			}
			b.WriteString(" " + c + strings.Repeat(" ", max(0, width[i]-utf8.RuneCountInString(c))) + " |")
		}
		if _, err := fmt.Fprintln(out, b.String()); err != nil {
			return err
		}
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// number formats a metric with about three significant digits, thousands separated.
func number(f float64) string {
	a := f
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 1000:
		return thousands(f)
	case a >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	case a >= 1 || a == 0:
		return strconv.FormatFloat(f, 'f', 2, 64)
	default:
		return strconv.FormatFloat(f, 'g', 3, 64)
	}
}

func thousands(f float64) string {
	neg := f < 0
	if neg {
		f = -f
	}
	s := strconv.FormatInt(int64(f+0.5), 10)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
