package main

import (
	"strconv"
)

// The pages the page targets spread their requests over (targetSpec.paths).

// distinctPages is how many pages of a kind a target spreads its load over
// (fewer when the catalog has fewer).
const distinctPages = 2000

// coldPages is a page target's service setting: the page cache off.
var coldPages = []string{"LOCALLIBRARY_PAGE_CACHE_MIB=0"}

func bookCount(s catalogSize) int   { return s.Books }
func authorCount(s catalogSize) int { return s.Authors }

// records picks up to distinctPages record ids spread evenly over 1..n.
func records(prefix string, count func(catalogSize) int) func(*harness, catalogSize) []string {
	return func(_ *harness, s catalogSize) []string {
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
func listPages(prefix string, count func(catalogSize) int, only int) func(*harness, catalogSize) []string {
	return func(_ *harness, s catalogSize) []string {
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
