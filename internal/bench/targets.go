package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/locallibrary/locallibrary/internal/bench/catalogs"
)

// kind is what a target loads, which process serves it and how it is
// checked.
type kind int

const (
	ceilingKind      kind = iota // the ceiling program
	homeKind                     // GET /catalog/ of returning browsers; their visits are checked
	firstVisitKind               // the cookie test's redirects, each hop a request, no cookie kept
	formKind                     // a form's POST with its CSRF token
	pageKind                     // GET of catalog pages, spread over many
	fleetKind                    // the home page through nginx to fleetReplicas replicas
	ceilingFleetKind             // the ceiling through nginx to fleetReplicas of its processes
	fiberKind                    // the home page through Fiber's session middleware (fibersession)
)

// targetSpec is a row of the target table: -targets names rows, and a new
// target is a new row (and a line in README.md, which a test checks).
type targetSpec struct {
	name, what string
	kind       kind
	catalog    string // a key of catalogs.Sizes; "" for the ceiling
	cold       bool   // served with the page cache off
	conns      int    // 0: -conns
	notice     bool   // home: browsers that have not dismissed the demo notice
	action     string // form: the form's action, which it posts to
	// paths are the pages a page target spreads its requests over.
	paths func(catalogs.Size) []string
}

const (
	dismissAction = "/catalog/notice/dismiss"
	forgetAction  = "/catalog/forget/"
)

var targetSpecs = []targetSpec{
	{name: "ceiling", kind: ceilingKind, what: "13-byte Fiber handler (internal/bench/ceiling)"},
	{name: "home-3k", kind: homeKind, catalog: "3k", what: "home page, returning browser, notice dismissed"},
	{name: "home-3k-notice", kind: homeKind, catalog: "3k", notice: true, what: "home page, returning browser, notice shown"},
	{name: "home-3k-256", kind: homeKind, catalog: "3k", conns: 256, what: "home page, notice dismissed, 256 connections"},
	{name: "home-3k-notice-256", kind: homeKind, catalog: "3k", conns: 256, notice: true, what: "home page, notice shown, 256 connections"},
	{name: "first-visit", kind: firstVisitKind, catalog: "3k", what: "first visit, 4 requests: / → /catalog/ → ?cookies=check → /catalog/"},
	{name: "got-it", kind: formKind, catalog: "3k", action: dismissAction, what: `"Got it": POST ` + dismissAction},
	{name: "forget-me", kind: formKind, catalog: "3k", action: forgetAction, what: `"Forget me": POST ` + forgetAction},
	{name: "books-3k", kind: pageKind, catalog: "3k", paths: listPages("/catalog/books/", books), what: "book list, every page"},
	{name: "book-3k", kind: pageKind, catalog: "3k", paths: records("/catalog/book/", books), what: "book page, every book"},
	{name: "author-3k", kind: pageKind, catalog: "3k", paths: records("/catalog/author/", authors), what: "author page, every author"},
	{name: "authors-3k", kind: pageKind, catalog: "3k", paths: listPages("/catalog/authors/", authors), what: "author list, every page"},
	{name: "books-1m", kind: pageKind, catalog: "1m", paths: listPages("/catalog/books/", books), what: "book list, every page"},
	{name: "book-1m", kind: pageKind, catalog: "1m", paths: records("/catalog/book/", books), what: "book page, 2,000 books spread evenly"},
	{name: "author-1m", kind: pageKind, catalog: "1m", paths: records("/catalog/author/", authors), what: "author page, 2,000 authors spread evenly"},
	{name: "authors-1m", kind: pageKind, catalog: "1m", paths: listPages("/catalog/authors/", authors), what: "author list, every page"},
	{name: "book-1m-cold", kind: pageKind, catalog: "1m", cold: true, paths: records("/catalog/book/", books), what: "book page, page cache off: what a page costs MySQL"},
	{name: "ceiling-fleet", kind: ceilingFleetKind, what: "the ceiling through nginx to 6 of its processes: the most the fleet's way serves"},
	{name: "fleet", kind: fleetKind, catalog: "3k", what: "home page, notice dismissed, through nginx to 6 replicas on 3 memcached nodes"},
	{name: "home-fiber-session", kind: fiberKind, catalog: "3k", what: "home page, notice dismissed, through Fiber's session middleware on memcachestore"},
}

// targetNames lists the table's rows: the default of -targets.
func targetNames() []string {
	names := make([]string, len(targetSpecs))
	for i, s := range targetSpecs {
		names[i] = s.name
	}
	return names
}

// parseTargets reads -targets: known names, each once.
func parseTargets(list string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			continue
		case slices.Contains(out, name):
			return nil, fmt.Errorf("-targets: %q twice", name)
		}
		if _, ok := specOf(name); !ok {
			return nil, fmt.Errorf("-targets: unknown target %q (known: %s)", name, strings.Join(targetNames(), ", "))
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-targets: none given")
	}
	return out, nil
}

func specOf(name string) (targetSpec, bool) {
	for _, s := range targetSpecs {
		if s.name == name {
			return s, true
		}
	}
	return targetSpec{}, false
}

// serviceKey names the service process a target of the site runs on:
// one per catalog and setting, shared by the targets that need it.
func (s targetSpec) serviceKey() string {
	if s.cold {
		return s.catalog + "-cold"
	}
	return s.catalog
}

// onService tells whether the target is served by a service process of
// a build (and so is measured again for -rev).
func (s targetSpec) onService() bool {
	return s.kind != ceilingKind && s.kind != ceilingFleetKind && s.kind != fiberKind
}

// distinctRecords bounds how many records a page target spreads over.
const distinctRecords = 2000

func books(z catalogs.Size) int   { return z.Books }
func authors(z catalogs.Size) int { return z.Authors }

// records are up to distinctRecords record pages, ids spread evenly over
// 1..n (the seed numbers them so).
func records(prefix string, count func(catalogs.Size) int) func(catalogs.Size) []string {
	return func(z catalogs.Size) []string {
		n := count(z)
		k := min(n, distinctRecords)
		out := make([]string, k)
		for i := range k {
			out[i] = prefix + strconv.Itoa(1+i*n/k)
		}
		return out
	}
}

// listPages are every page of a list at its default 10 a page.
func listPages(prefix string, count func(catalogs.Size) int) func(catalogs.Size) []string {
	return func(z catalogs.Size) []string {
		pages := max(1, (count(z)+9)/10)
		out := make([]string, pages)
		for i := range pages {
			out[i] = prefix + "?page=" + strconv.Itoa(i+1)
		}
		return out
	}
}
