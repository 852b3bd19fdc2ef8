package routes

import "testing"

// Every section marks exactly its own link; a page of no section marks none.
func TestNavMarksOneLink(t *testing.T) {
	for s := range sectionCount {
		var current []string
		for _, l := range navFor(s) {
			if l.Current {
				current = append(current, string(l.Href))
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
