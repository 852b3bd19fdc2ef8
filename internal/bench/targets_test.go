package main

import (
	"io"
	"strings"
	"testing"
)

func TestTargetTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range targetSpecs {
		if seen[s.name] {
			t.Errorf("target %q twice", s.name)
		}
		seen[s.name] = true
		if s.gen != "wrk" && s.gen != "go" {
			t.Errorf("%s: generator %q", s.name, s.gen)
		}
		if s.kind != "ceiling" && s.route == "" {
			t.Errorf("%s: a page without its route label", s.name)
		}
		if s.browsers != "" {
			owner, ok := specOf(s.browsers)
			switch {
			case !ok:
				t.Errorf("%s: browsers of unknown target %q", s.name, s.browsers)
			case owner.large != s.large:
				t.Errorf("%s: browsers of %s, on the other catalog", s.name, s.browsers)
			}
		}
	}
	for _, name := range []string{ceilingWrk, ceilingGo, home3k, home3kGo, home1m, home1mHigh} {
		if !seen[name] {
			t.Errorf("the report compares %q, which is no row", name)
		}
	}
}

func TestTargetsByName(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.targets, ","); got != defaultTargets() {
		t.Errorf("default targets %q, want %q", got, defaultTargets())
	}
	o, err = parseOptions([]string{"-targets", "home-3k, books-1m"}, io.Discard)
	if err != nil || strings.Join(o.targets, ",") != "home-3k,books-1m" {
		t.Errorf("-targets home-3k,books-1m: %v, %v", o.targets, err)
	}
	if _, err := parseOptions([]string{"-targets", "b"}, io.Discard); err == nil || !strings.Contains(err.Error(), "unknown target") {
		t.Errorf("-targets b: %v, want unknown target", err)
	}
}

func TestBookListPagesSpread(t *testing.T) {
	h := &harness{o: options{listPages: 3}}
	paths := bookListPages(h, catalogSize{Authors: 1, Books: 95, CopiesPerBook: 1})
	if strings.Join(paths, " ") != "/catalog/books/?page=1 /catalog/books/?page=2 /catalog/books/?page=3" {
		t.Errorf("paths %q", paths)
	}
	lines := spreadLines(paths, []browser{{cookie: "a"}, {cookie: "b"}})
	count := map[string]int{}
	for i, l := range lines {
		count[l.path]++
		if want := []string{"a", "b"}[i%2]; l.cookie != want {
			t.Fatalf("line %d cookie %q, want %q", i, l.cookie, want)
		}
	}
	for _, p := range paths {
		if c := count[p]; c < len(lines)/3-1 || c > len(lines)/3+1 {
			t.Errorf("%s gets %d of %d lines, want an even spread", p, c, len(lines))
		}
	}
}
