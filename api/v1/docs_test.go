package v1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestAPIDocs keeps docs/api.md honest: every field of the generated CRD, every enum value,
// every printer column, and every condition type and reason of conditions.go must be
// documented there. It needs no API server (go test ./api/v1 -run TestAPIDocs).
//
// What "documented" means:
//   - a spec/status field: its full path in backticks, e.g. `spec.defaults.acl.secretRef.name`
//     (list items as `[]`, e.g. `spec.rootNodes[].url`);
//   - an enum value and a printer column: the value or column name in backticks;
//   - a condition type: a "### <Type>" heading;
//   - a reason: in backticks inside the section of its condition (the "### <Type>" heading up to
//     the next "### " heading), grouped as conditions.go groups the constants;
//   - an Event reason (EventReason* of events.go, and every reason the CredentialsResolved
//     section documents as False, which is also a Warning's reason): in the first column of the
//     Events table, which lists nothing else.
func TestAPIDocs(t *testing.T) {
	doc := readFile(t, filepath.Join("..", "..", "docs", "api.md"))

	crds, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs found under config/crd/bases: %v", err)
	}
	var missing []string
	for _, f := range crds {
		fields, enums, columns := crdFacts(t, f)
		if len(fields) < 20 {
			t.Fatalf("%s: only %d fields found; the walk is broken", f, len(fields))
		}
		for _, p := range fields {
			if !strings.Contains(doc, "`"+p+"`") {
				missing = append(missing, "field "+p)
			}
		}
		for _, e := range enums {
			if !strings.Contains(doc, "`"+e.value+"`") {
				missing = append(missing, "enum value "+e.value+" of "+e.path)
			}
		}
		for _, c := range columns {
			if !strings.Contains(doc, "`"+c+"`") {
				missing = append(missing, "printer column "+c)
			}
		}
	}

	types, reasons := conditionConstants(t, "conditions.go")
	if len(types) < 6 || len(reasons) < 20 {
		t.Fatalf("conditions.go: %d types and %d reasons found; the parse is broken", len(types), len(reasons))
	}
	for _, typ := range types {
		if section(doc, typ) == "" {
			missing = append(missing, "condition type "+typ+` (a "### `+typ+`" heading)`)
		}
	}
	for _, r := range reasons {
		if !strings.Contains(section(doc, r.condition), "`"+r.value+"`") {
			missing = append(missing, "reason "+r.value+" ("+r.name+") in the section of condition "+r.condition)
		}
	}

	missing = append(missing, eventsMissing(t, doc, reasons)...)

	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("docs/api.md does not document %d item(s):\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type enumValue struct{ path, value string }

// crdFacts returns every property path under spec and status, every enum value, and the
// printer column names of one CRD file.
func crdFacts(t *testing.T, file string) (fields []string, enums []enumValue, columns []string) {
	t.Helper()
	var crd map[string]any
	if err := yaml.Unmarshal([]byte(readFile(t, file)), &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	versions, _ := dig(crd, "spec", "versions").([]any)
	if len(versions) == 0 {
		t.Fatalf("%s: no versions", file)
	}
	for _, v := range versions {
		vm, _ := v.(map[string]any)
		for _, c := range asSlice(vm["additionalPrinterColumns"]) {
			if name, ok := dig(c, "name").(string); ok {
				columns = append(columns, name)
			}
		}
		props, _ := dig(vm, "schema", "openAPIV3Schema", "properties").(map[string]any)
		for _, top := range []string{"spec", "status"} {
			s, ok := props[top].(map[string]any)
			if !ok {
				t.Fatalf("%s: no %s schema", file, top)
			}
			walk(top, s, &fields, &enums)
		}
	}
	return fields, enums, columns
}

// walk appends the paths of the properties of schema s (at path p), descending into objects
// and list items.
func walk(p string, s map[string]any, fields *[]string, enums *[]enumValue) {
	for _, e := range asSlice(s["enum"]) {
		*enums = append(*enums, enumValue{p, toString(e)})
	}
	if items, ok := s["items"].(map[string]any); ok {
		walk(p+"[]", items, fields, enums)
	}
	props, _ := s["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		child := p + "." + n
		*fields = append(*fields, child)
		if cs, ok := props[n].(map[string]any); ok {
			walk(child, cs, fields, enums)
		}
	}
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return ""
	}
}

type reasonConst struct{ name, value, condition string }

// conditionConstants parses conditions.go: the values of the Condition* constants, and the
// Reason* constants with the condition they belong to. A reason belongs to the condition whose
// type value its group's comment names ("// CredentialsResolved"); reasons before any such
// comment belong to Ready.
func conditionConstants(t *testing.T, file string) (types []string, reasons []reasonConst) {
	t.Helper()
	specs, values := constants(t, file)
	isType := map[string]bool{}
	for _, vs := range specs {
		for _, n := range vs.Names {
			if strings.HasPrefix(n.Name, "Condition") {
				types = append(types, values[n.Name])
				isType[values[n.Name]] = true
			}
		}
	}
	group := "Ready"
	for _, vs := range specs {
		if vs.Doc != nil {
			// A group of reasons starts with "// Reasons of <ConditionType>."
			g := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(vs.Doc.Text()), "Reasons of "), ".")
			if isType[g] {
				group = g
			}
		}
		for _, n := range vs.Names {
			if strings.HasPrefix(n.Name, "Reason") {
				reasons = append(reasons, reasonConst{name: n.Name, value: values[n.Name], condition: group})
			}
		}
	}
	return types, reasons
}

var heading3 = regexp.MustCompile(`(?m)^### `)

// section returns the text of doc from the heading "### <title>" (the title may be followed by
// more words) to the next "### " heading, or "" without such a heading.
func section(doc, title string) string {
	re := regexp.MustCompile(`(?m)^### ` + "`?" + regexp.QuoteMeta(title) + "`?" + `(\s|$)`)
	loc := re.FindStringIndex(doc)
	if loc == nil {
		return ""
	}
	rest := doc[loc[1]:]
	if next := heading3.FindStringIndex(rest); next != nil {
		rest = rest[:next[0]]
	}
	return doc[loc[0]:loc[1]] + rest
}

// TestOperatingDocsMetrics keeps the metrics table of docs/operating.md complete: every metric
// controllers/metrics.go registers must appear there in backticks.
func TestOperatingDocsMetrics(t *testing.T) {
	doc := readFile(t, filepath.Join("..", "..", "docs", "operating.md"))
	src := readFile(t, filepath.Join("..", "..", "controllers", "metrics.go"))
	names := regexp.MustCompile(`Name:\s*"([a-z_]+)"`).FindAllStringSubmatch(src, -1)
	if len(names) == 0 {
		t.Fatal("no metric names found in controllers/metrics.go")
	}
	for _, m := range names {
		if !strings.Contains(doc, "`"+m[1]+"`") {
			t.Errorf("docs/operating.md does not document the metric %s", m[1])
		}
	}
}

// eventsMissing checks the Events table of docs/api.md ("## Events" up to the next "## "
// heading) against events.go and the CredentialsResolved reasons: every Event reason the
// controller records has a row, and every row names an Event reason.
func eventsMissing(t *testing.T, doc string, reasons []reasonConst) []string {
	t.Helper()
	loc := regexp.MustCompile(`(?m)^## Events\s*$`).FindStringIndex(doc)
	if loc == nil {
		return []string{`the "## Events" section`}
	}
	events := doc[loc[1]:]
	if next := regexp.MustCompile(`(?m)^## `).FindStringIndex(events); next != nil {
		events = events[:next[0]]
	}
	listed := map[string]bool{}
	for _, row := range regexp.MustCompile(`(?m)^\|([^|]*)\|`).FindAllStringSubmatch(events, -1) {
		for _, name := range regexp.MustCompile("`([A-Za-z]+)`").FindAllStringSubmatch(row[1], -1) {
			listed[name[1]] = true
		}
	}

	want := map[string]string{}
	_, consts := constants(t, "events.go")
	for name, value := range consts {
		if strings.HasPrefix(name, "EventReason") {
			want[value] = name
		}
	}
	if len(want) < 7 {
		t.Fatalf("events.go: %d Event reasons found; the parse is broken", len(want))
	}
	// A CredentialsResolved failure is a Warning with the condition's reason: every reason of
	// that group in conditions.go but those the section documents as True.
	credentials := section(doc, "CredentialsResolved")
	credentialReasons := 0
	for _, r := range reasons {
		if r.condition == "CredentialsResolved" && !strings.Contains(credentials, "| True | `"+r.value+"`") {
			want[r.value] = r.name
			credentialReasons++
		}
	}
	if credentialReasons < 6 {
		t.Fatalf("only %d failure reasons of CredentialsResolved found; the parse is broken", credentialReasons)
	}

	var missing []string
	for value, name := range want {
		if !listed[value] {
			missing = append(missing, "Event reason "+value+" ("+name+") in the Events table")
		}
	}
	for value := range listed {
		if want[value] == "" {
			missing = append(missing, "no Event reason "+value+" (listed in the Events table; not in events.go nor a CredentialsResolved failure)")
		}
	}
	return missing
}

// constants parses the const declarations of one file of this package: their specs in order,
// and the values of the string constants by name.
func constants(t *testing.T, file string) (specs []*ast.ValueSpec, values map[string]string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	values = map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						values[n.Name], _ = strconv.Unquote(lit.Value)
					}
				}
			}
			specs = append(specs, vs)
		}
	}
	return specs, values
}
