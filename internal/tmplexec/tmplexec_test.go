package tmplexec_test

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"strings"
	"testing"

	"github.com/locallibrary/locallibrary/internal/tmplexec"
)

type item struct {
	Name  string
	N     int
	U     uint8
	Ptr   *item
	Any   any
	Tags  []string
	Items []item
}

func (i item) Upper() string        { return strings.ToUpper(i.Name) }
func (i item) Check() (bool, error) { return i.N > 0, nil }
func (i item) Fails() (string, error) {
	return "", errors.New("method failed")
}
func (i *item) PtrName() string { return "ptr:" + i.Name }

type stringer int

func (s stringer) String() string { return fmt.Sprintf("<%d>", int(s)) }

func must(t *testing.T, src string, funcs template.FuncMap) (*template.Template, *tmplexec.Template) {
	t.Helper()
	ht := template.Must(template.New("page").Funcs(funcs).Parse(src))
	x, err := tmplexec.New(ht, funcs)
	if err != nil {
		t.Fatal(err)
	}
	return ht, x
}

// Every construct tmplexec supports renders as html/template renders it,
// or fails where it fails.
func TestExecuteMatchesHTMLTemplate(t *testing.T) {
	funcs := template.FuncMap{
		"join":  func(a, b string) string { return a + "|" + b },
		"nums":  func() []int { return []int{0, 1, 2} },
		"fixed": func() any { return []string{"x", "<y>"} },
		"url":   func(s string) string { return "/static/" + s },
		"boom":  func(s string, n int) string { panic("boom") },
	}
	srcs := []string{
		`<p title="{{.Name}}">{{.Name}}</p><a href="{{.Name}}">x</a><a href="/q?x={{.Name}}">y</a>`,
		`<title>{{.Name}}</title><textarea>{{.Name}}</textarea>`,
		`{{if .N}}n{{else if .Tags}}tags{{else}}none{{end}}|{{with .Ptr}}{{.Name}}{{else}}no ptr{{end}}`,
		`{{range $i, $t := .Tags}}{{if $i}}, {{end}}{{$i}}={{$t}}{{else}}empty{{end}}`,
		`{{range .Items}}[{{.Name}} {{$.Name}} {{.Upper}} {{if .Check}}ok{{end}}]{{end}}`,
		`{{range $x := nums}}{{if eq $x $.N}}={{else if gt $x $.N}}>{{else}}<{{end}}{{end}} {{eq .U 3}} {{gt .N .U}} {{eq .Name "a"}}`,
		`{{define "t"}}<b>{{$.Name}}</b>{{.N}}{{end}}{{template "t" .}}<i>{{template "t" .Ptr}}</i>`,
		`{{range fixed}}{{.}}{{end}} <a href="{{url "a.css"}}">{{url .Name}}</a>`,
		`{{join .Name .Upper}} {{.N}} {{.U}} {{.Any}} {{.Ptr}} {{.Tags}} {{.Ptr.PtrName}}`,
		`{{.Ptr.Name}}`, // nil pointer: both fail
		`{{.Fails}}`,
		`{{boom .Name .N}}`, // a panic: both report an error
		`{{- /* comment */ -}} {{.Name -}} , {{- .N}}`,
	}
	data := []item{
		{},
		{Name: `<a href="x">&'+` + "\x00", N: 3, U: 3, Tags: []string{"a", "<b>"}, Any: stringer(5),
			Ptr: &item{Name: "javascript:alert(1)"}, Items: []item{{Name: "i1", N: 1}, {Name: "i2"}}},
		{Name: "a", N: -2, U: 255, Any: 1.5, Ptr: &item{Name: "%zz ok"}, Items: []item{}},
		{Name: "Ünï ✓", Any: []int{1}, Tags: []string{}},
	}
	for _, src := range srcs {
		ht, x := must(t, src, funcs)
		for _, d := range data {
			for _, arg := range []any{d, &d} {
				var want bytes.Buffer
				wantErr := ht.Execute(&want, arg)
				got, err := x.Execute(nil, arg)
				if (err == nil) != (wantErr == nil) {
					t.Fatalf("%s with %+v: html/template error %v, tmplexec error %v", src, arg, wantErr, err)
				}
				if err == nil && !bytes.Equal(got, want.Bytes()) {
					t.Errorf("%s with %+v:\ntmplexec      %q\nhtml/template %q", src, arg, got, want.Bytes())
				}
			}
		}
	}
}

// A template using anything tmplexec does not know is refused at start.
func TestNewRefusesWhatItDoesNotKnow(t *testing.T) {
	funcs := template.FuncMap{"f": func(a string) string { return a }, "v": func(a ...string) string { return "" }}
	for _, src := range []string{
		`{{printf "%s" .}}`,
		`{{len .}}`,
		`{{index . 0}}`,
		`{{and . .}}`,
		`{{lt 1 2}}`,
		`{{f 1}}`, // a number constant is converted to the parameter's type: not done here
		`{{v .}}`,
		`{{.Method 1}}`,
		`{{(.).Field}}`,
		`{{$x := .}}{{$x}}`,
		`{{with $x := .}}{{$x}}{{end}}`,
		`{{range .}}{{break}}{{end}}`,
		`{{range .}}{{continue}}{{end}}`,
		`{{. | f}}`,
		`<script>var x = {{.}};</script>`,
		`<script>var s = "{{.}}";</script>`,
		`<style>p { color: {{.}} }</style>`,
		`<a onclick="{{.}}">x</a>`,
		`<a title={{.}}>x</a>`,
		`<img srcset="{{.}}">`,
		`<input {{.}}>`,
		`{{if .}}<a href="{{else}}<b>{{end}}">`, // html/template cannot escape it
		`<!-- {{.}} -->`,
		`{{define "t"}}{{.}}{{end}}<script>{{template "t" .}}</script>`, // a derived template
		`{{define "t"}}{{len .}}{{end}}<title>{{template "t" .}}</title>`,
	} {
		ht, err := template.New("page").Funcs(funcs).Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if _, err := tmplexec.New(ht, funcs); err == nil {
			t.Errorf("%s: accepted, want refused", src)
		} else {
			t.Logf("%s: %v", src, err)
		}
	}
}

// Trusted content is printed differently by html/template's escapers;
// tmplexec refuses to print it rather than escape it its own way.
func TestTrustedContentIsRefused(t *testing.T) {
	_, x := must(t, `<p>{{.}}</p>`, nil)
	for _, v := range []any{template.HTML("<b>x</b>"), template.URL("javascript:x"), template.JS("x"), new(template.HTMLAttr)} {
		if out, err := x.Execute(nil, v); err == nil {
			t.Errorf("%T printed as %q, want an error", v, out)
		}
	}
}

// Constant functions are called once, by New, and what depends on them
// alone is text from then on; what also reads the data still executes.
func TestConstantPartsAreRenderedOnce(t *testing.T) {
	calls := 0
	funcs := template.FuncMap{
		"links": func() any { calls++; return []item{{Name: "a<b", N: 1}, {Name: "c"}} },
		"url":   func(s string) string { calls++; return "/static/" + s },
	}
	src := `<link href="{{url "s.css"}}">{{range links}}<a href="/{{.Name}}">{{.Name}}{{if .N}}!{{end}}</a>{{end}}` +
		`{{range links}}{{$.Name}}{{end}}|{{.Name}}`
	ht := template.Must(template.New("page").Funcs(funcs).Parse(src))
	x, err := tmplexec.New(ht, funcs, "links", "url")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []item{{Name: "x"}, {Name: "<y>"}} {
		var want bytes.Buffer
		if err := ht.Execute(&want, d); err != nil {
			t.Fatal(err)
		}
		before := calls
		got, err := x.Execute(nil, d)
		if err != nil || string(got) != want.String() {
			t.Errorf("got %q, %v; want %q", got, err, want.String())
		}
		// Only the range that reads $ still calls links.
		if n := calls - before; n != 1 {
			t.Errorf("an execution called the constant functions %d times, want 1", n)
		}
	}
	if _, err := tmplexec.New(ht, funcs, "nosuch"); err == nil {
		t.Error("an unknown constant function was accepted")
	}
}
