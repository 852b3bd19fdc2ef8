package routes

import (
	"slices"
	"testing"
)

// Every section marks exactly its own link; a page of no section marks none.
func TestNavMarksOneLink(t *testing.T) {
	for _, s := range []section{noSection, homeSection, booksSection, authorsSection} {
		var current []string
		for _, l := range navFor(s) {
			if l.Current {
				current = append(current, l.Href)
			}
		}
		want := 1
		if s == noSection {
			want = 0
		}
		if len(current) != want {
			t.Errorf("section %d marks %q as current, want %d link(s)", s, current, want)
		}
	}
}

// A misspelt page name in pageSections would leave its page in no section.
func TestPageSectionsNameRealPages(t *testing.T) {
	for name := range pageSections {
		if !slices.Contains(pageNames, name) {
			t.Errorf("pageSections places %q, which is no page (pages: %v)", name, pageNames)
		}
	}
}
