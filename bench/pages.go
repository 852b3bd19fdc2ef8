package main

import (
	"fmt"
	"strconv"
)

// pageTarget is a catalog page measured over many distinct pages of one
// kind, as returning browsers read them.
type pageTarget struct {
	title string
	large bool   // on the 1,000,000-copy catalog, else the 3,000-copy one
	route string // the route label in the service's metrics
	cold  bool   // served with the page cache off
	paths func(size catalogSize) []string
}

// distinctPages is how many pages of a kind a target spreads its load over
// (fewer when the catalog has fewer).
const distinctPages = 2000

// pageTargets are the targets beyond the home page and the book list
// (d and f, which -list-db can swap).
var pageTargets = map[string]pageTarget{
	"bp3k":      {title: "book page", route: "/catalog/book/:id", paths: records("/catalog/book/", bookCount)},
	"bp1m":      {title: "book page", large: true, route: "/catalog/book/:id", paths: records("/catalog/book/", bookCount)},
	"ap3k":      {title: "author page", route: "/catalog/author/:id", paths: records("/catalog/author/", authorCount)},
	"ap1m":      {title: "author page", large: true, route: "/catalog/author/:id", paths: records("/catalog/author/", authorCount)},
	"al3k":      {title: "author list", route: "/catalog/authors/", paths: listPages("/catalog/authors/", authorCount, 0)},
	"al1m":      {title: "author list", large: true, route: "/catalog/authors/", paths: listPages("/catalog/authors/", authorCount, 0)},
	"bp1m-cold": {title: "book page, cache off", large: true, cold: true, route: "/catalog/book/:id", paths: records("/catalog/book/", bookCount)},
	"bl1m-cold": {title: "book list, cache off", large: true, cold: true, route: "/catalog/books/", paths: listPages("/catalog/books/", bookCount, 0)},
	"deep1":     {title: "book list page 1 only, cache off", large: true, cold: true, route: "/catalog/books/", paths: listPages("/catalog/books/", bookCount, 1)},
	"deep10k":   {title: "book list last page only, cache off", large: true, cold: true, route: "/catalog/books/", paths: listPages("/catalog/books/", bookCount, -1)},
}

func init() {
	for key, p := range pageTargets {
		targetTitles[key] = p.title
	}
}

func bookCount(s catalogSize) int   { return s.Books }
func authorCount(s catalogSize) int { return s.Authors }

// records picks up to distinctPages record ids spread evenly over 1..n.
func records(prefix string, count func(catalogSize) int) func(catalogSize) []string {
	return func(s catalogSize) []string {
		n := count(s)
		k := min(n, distinctPages)
		out := make([]string, k)
		for i := range k {
			out[i] = prefix + strconv.Itoa(1+i*n/k)
		}
		return out
	}
}

// listPages is every page of a list at 10 a page; only = 1 keeps the
// first page alone, only = -1 the last.
func listPages(prefix string, count func(catalogSize) int, only int) func(catalogSize) []string {
	return func(s catalogSize) []string {
		pages := max(1, (count(s)+9)/10)
		switch only {
		case 1:
			return []string{prefix + "?page=1"}
		case -1:
			return []string{prefix + "?page=" + strconv.Itoa(pages)}
		}
		out := make([]string, pages)
		for i := range pages {
			out[i] = prefix + "?page=" + strconv.Itoa(i+1)
		}
		return out
	}
}

// pageSettings are a page target's service settings.
func pageSettings(key string) []string {
	if p, ok := pageTargets[key]; ok && p.cold {
		return []string{"LOCALLIBRARY_PAGE_CACHE_MIB=0"}
	}
	return nil
}

// pageLines spreads n requests evenly over paths, each from one of the
// browsers in turn.
func pageLines(paths []string, bs []browser) []reqLine {
	n := max(len(bs), 4096)
	lines := make([]reqLine, n)
	for i := range n {
		// A fixed, even spread (Knuth's multiplicative hash).
		p := paths[int(uint64(i)*2654435761%uint64(len(paths)))]
		lines[i] = reqLine{path: p, cookie: bs[i%len(bs)].cookie}
	}
	return lines
}

// pageTitle names a page target with its catalog and spread.
func pageTitle(p pageTarget, size catalogSize, distinct int) string {
	return fmt.Sprintf("%s, %s distinct, %s copies", p.title, thousands(int64(distinct)), thousands(int64(size.copies())))
}
