package main

import (
	"fmt"
	"strconv"
	"strings"
)

// targetSpec is a target -targets can name: what is loaded, on which
// catalog, with which generator and how many connections. Adding a target
// is adding a row to targetSpecs.
type targetSpec struct {
	name, title string
	kind        string // "ceiling", "home", "list" (any page but home) or "fleet" (measured apart)
	large       bool   // on the large catalog (-large-size), else the small one
	gen         string // "wrk" or "go"
	highConns   bool   // at -high-conns instead of -conns
	// browsers names the target whose returning browsers it reuses ("":
	// its own); browsers of one catalog can be shared, as any process
	// reads their sessions from memcached.
	browsers string
	route    string   // the route label in the service's metrics ("" for the ceiling)
	settings []string // the service's settings beyond the harness's own
	// paths are the pages its requests spread over (nil: the home page).
	paths func(h *harness, size catalogSize) []string
	// named: run only when -targets names it, not by default.
	named bool
}

// The targets the report compares by name.
const (
	ceilingWrk = "ceiling"
	ceilingGo  = "ceiling-go"
	home3k     = "home-3k"
	home3kGo   = "home-3k-go"
	home1m     = "home-1m"
	home1mHigh = "home-1m-high"
)

var targetSpecs = []targetSpec{
	{name: ceilingWrk, title: "13-byte Fiber handler", kind: "ceiling", gen: "wrk", browsers: home3k},
	{name: home3k, title: "home page, 3,000 copies", kind: "home", gen: "wrk", route: "/catalog/"},
	{name: home1m, title: "home page, 1,000,000 copies", kind: "home", large: true, gen: "wrk", route: "/catalog/"},
	{name: "books-1m", title: "book list, ?page=N varying", kind: "list", large: true, gen: "wrk", route: "/catalog/books/", paths: bookListPages},
	{name: "books-3k", title: "book list, ?page=N varying", kind: "list", gen: "wrk", route: "/catalog/books/", paths: bookListPages},
	{name: home1mHigh, title: "home page, 1,000,000 copies, high connections", kind: "home", large: true, gen: "wrk", highConns: true, route: "/catalog/"},
	{name: ceilingGo, title: "13-byte Fiber handler, Go load generator", kind: "ceiling", gen: "go", browsers: home3k},
	{name: home3kGo, title: "home page, 3,000 copies, Go load generator", kind: "home", gen: "go", browsers: home3k, route: "/catalog/"},

	// Catalog pages, each over many distinct pages of its kind.
	{named: true, name: "bp3k", title: "book page", kind: "list", gen: "wrk", browsers: home3k, route: "/catalog/book/:id", paths: records("/catalog/book/", bookCount)},
	{named: true, name: "bp1m", title: "book page", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/book/:id", paths: records("/catalog/book/", bookCount)},
	{named: true, name: "ap3k", title: "author page", kind: "list", gen: "wrk", browsers: home3k, route: "/catalog/author/:id", paths: records("/catalog/author/", authorCount)},
	{named: true, name: "ap1m", title: "author page", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/author/:id", paths: records("/catalog/author/", authorCount)},
	{named: true, name: "al3k", title: "author list", kind: "list", gen: "wrk", browsers: home3k, route: "/catalog/authors/", paths: listPages("/catalog/authors/", authorCount, 0)},
	{named: true, name: "al1m", title: "author list", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/authors/", paths: listPages("/catalog/authors/", authorCount, 0)},
	{named: true, name: "bp1m-cold", title: "book page, cache off", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/book/:id", settings: coldPages, paths: records("/catalog/book/", bookCount)},
	{named: true, name: "bl1m-cold", title: "book list, cache off", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/books/", settings: coldPages, paths: listPages("/catalog/books/", bookCount, 0)},
	{named: true, name: "deep1", title: "book list page 1 only, cache off", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/books/", settings: coldPages, paths: listPages("/catalog/books/", bookCount, 1)},
	{named: true, name: "deep10k", title: "book list last page only, cache off", kind: "list", large: true, gen: "wrk", browsers: home1m, route: "/catalog/books/", settings: coldPages, paths: listPages("/catalog/books/", bookCount, -1)},

	// MariaDB's CPU for the same home-page traffic on 1 and on 6 replicas
	// (fleet.go), measured after the rounds.
	{named: true, name: "fleet", title: "MariaDB CPU, home page traffic on 1 vs 6 replicas", kind: "fleet", large: true, gen: "go", browsers: home1m, route: "/catalog/"},
}

// defaultTargets is -targets' default: the rows not marked named, in the
// table's order.
func defaultTargets() string {
	var names []string
	for _, s := range targetSpecs {
		if !s.named {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ",")
}

// allTargets names every row.
func allTargets() string {
	names := make([]string, len(targetSpecs))
	for i, s := range targetSpecs {
		names[i] = s.name
	}
	return strings.Join(names, ",")
}

// specOf is the row of a target name.
func specOf(name string) (targetSpec, bool) {
	for _, s := range targetSpecs {
		if s.name == name {
			return s, true
		}
	}
	return targetSpec{}, false
}

// ceiling is the target whose same-round throughput this one is divided by:
// the ceiling measured with the same generator.
func (s targetSpec) ceiling() string {
	if s.gen == "go" {
		return ceilingGo
	}
	return ceilingWrk
}

// browserGroup is the name under which its browsers are created.
func (s targetSpec) browserGroup() string {
	if s.browsers != "" {
		return s.browsers
	}
	return s.name
}

// bookListPages are the book list's pages at the default 10 a page, the
// first -list-pages of them when set.
func bookListPages(h *harness, size catalogSize) []string {
	pages := (size.Books + 9) / 10
	if h.o.listPages > 0 {
		pages = min(pages, h.o.listPages)
	}
	out := make([]string, pages)
	for i := range pages {
		out[i] = "/catalog/books/?page=" + strconv.Itoa(i+1)
	}
	return out
}

// spreadLines spreads at least 4096 requests evenly over paths, each
// from one of the browsers in turn.
func spreadLines(paths []string, bs []browser) []reqLine {
	n := max(len(bs), 4096)
	lines := make([]reqLine, n)
	for i := range n {
		// A fixed, even spread (Knuth's multiplicative hash).
		p := paths[int(uint64(i)*2654435761%uint64(len(paths)))]
		lines[i] = reqLine{path: p, cookie: bs[i%len(bs)].cookie}
	}
	return lines
}

// pageTitle names a page target with its spread and catalog.
func pageTitle(s targetSpec, distinct int, size catalogSize) string {
	return fmt.Sprintf("%s, %s distinct, %s copies", s.title, thousands(int64(distinct)), thousands(int64(size.copies())))
}
