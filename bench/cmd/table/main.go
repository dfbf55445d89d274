// Command table turns `go test -bench . -benchmem` output of the bench module (read from stdin)
// into one Markdown table: the median ns/op of each case and client over -count runs, as
// operations per second and as a ratio to plain go-redis, with allocs/op.
//
//	cd bench && go test -run '^$' -bench . -benchmem -count 3 | tee bench.out
//	go run ./cmd/table < bench.out
//
// Benchmark names are Benchmark<Group>/<topology>/<command>/par<N>/<client>[-GOMAXPROCS]. A
// command named PIPE<n> is one pipeline of n commands per op: its ops/s counts commands.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// order is the column order of the known clients; others follow alphabetically.
var order = []string{"go-redis", "rconn", "rconn-autopipeline", "go-redis-autopipeliner", "rueidis"}

const baseline = "go-redis"

var line = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+[\d.]+ B/op\s+(\d+) allocs/op)?`)

type sample struct {
	ns     []float64
	allocs []float64
}

func main() {
	if err := table(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}

func table(in io.Reader, out io.Writer) error {
	samples := map[string]map[string]*sample{} // case -> client -> samples
	var cases []string
	clientSet := map[string]bool{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		m := line.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		name := m[1]
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			continue
		}
		cs, cl := name[:i], name[i+1:]
		if j := strings.IndexByte(cs, '/'); j >= 0 {
			cs = cs[j+1:] // drop the benchmark function name
		}
		if samples[cs] == nil {
			samples[cs] = map[string]*sample{}
			cases = append(cases, cs)
		}
		s := samples[cs][cl]
		if s == nil {
			s = &sample{}
			samples[cs][cl] = s
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		s.ns = append(s.ns, ns)
		if m[3] != "" {
			a, _ := strconv.ParseFloat(m[3], 64)
			s.allocs = append(s.allocs, a)
		}
		clientSet[cl] = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(cases) == 0 {
		return fmt.Errorf("no benchmark lines in the input")
	}
	var clients []string
	for _, c := range order {
		if clientSet[c] {
			clients = append(clients, c)
		}
	}
	var rest []string
	for c := range clientSet {
		if !slices.Contains(order, c) {
			rest = append(rest, c)
		}
	}
	sort.Strings(rest)
	clients = append(clients, rest...)

	head := []string{"topology", "command", "par"}
	for _, c := range clients {
		if c == baseline {
			head = append(head, c+" ops/s")
		} else {
			head = append(head, c+" ops/s", "× "+baseline)
		}
	}
	head = append(head, "allocs/op ("+strings.Join(clients, " / ")+")")
	fmt.Fprintln(out, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(out, "|"+strings.Repeat("---|", len(head)))
	for _, cs := range cases {
		parts := strings.Split(cs, "/")
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		perOp := 1.0
		if n, err := strconv.Atoi(strings.TrimLeft(parts[1], "ABCDEFGHIJKLMNOPQRSTUVWXYZ")); err == nil && n > 0 && strings.HasPrefix(parts[1], "PIPE") {
			perOp = float64(n)
		}
		row := []string{parts[0], parts[1], strings.TrimPrefix(parts[2], "par")}
		base := 0.0
		if s := samples[cs][baseline]; s != nil {
			base = perOp * 1e9 / median(s.ns)
		}
		var allocs []string
		for _, c := range clients {
			s := samples[cs][c]
			if s == nil {
				row = append(row, "–")
				if c != baseline {
					row = append(row, "–")
				}
				allocs = append(allocs, "–")
				continue
			}
			ops := perOp * 1e9 / median(s.ns)
			row = append(row, thousands(ops))
			if c != baseline {
				if base > 0 {
					row = append(row, fmt.Sprintf("%.2f", ops/base))
				} else {
					row = append(row, "–")
				}
			}
			if len(s.allocs) > 0 {
				allocs = append(allocs, strconv.FormatFloat(median(s.allocs), 'f', -1, 64))
			} else {
				allocs = append(allocs, "?")
			}
		}
		row = append(row, strings.Join(allocs, " / "))
		fmt.Fprintln(out, "| "+strings.Join(row, " | ")+" |")
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

func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
