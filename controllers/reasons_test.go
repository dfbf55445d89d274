package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// reasonArgs names the calls that take a condition type or a condition/Event reason, and which
// of their arguments those are.
var reasonArgs = map[string][]int{
	"condTrue":  {0, 1},
	"condFalse": {0, 1},
	"event":     {2},
	"Eventf":    {3},
	"credErr":   {0},
	"problem":   {0},
}

// TestReasonsAreConstants keeps every condition type and reason, and every Event reason, a
// constant of api/v1 (where docs_test.go checks docs/api.md lists it): a string literal in one
// of those places is a name nobody can find.
func TestReasonsAreConstants(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var args []ast.Expr
			var at []int
			switch x := n.(type) {
			case *ast.CallExpr:
				switch fn := x.Fun.(type) {
				case *ast.Ident:
					at = reasonArgs[fn.Name]
				case *ast.SelectorExpr:
					at = reasonArgs[fn.Sel.Name]
				}
				args = x.Args
			case *ast.CompositeLit:
				if id, ok := x.Type.(*ast.Ident); ok && id.Name == "statusEvent" {
					at, args = []int{1}, x.Elts
				}
			}
			for _, i := range at {
				if i >= len(args) {
					continue
				}
				checked++
				if lit, ok := args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					t.Errorf("%s: reason %s is a literal; use a constant of api/v1", fset.Position(lit.Pos()), lit.Value)
				}
			}
			return true
		})
	}
	if checked < 30 {
		t.Fatalf("only %d reason arguments found; the walk is broken", checked)
	}
}
