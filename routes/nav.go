package routes

import (
	"github.com/a-h/templ"

	"github.com/locallibrary/locallibrary/templates"
)

// section is the part of the site a page belongs to. The navigation marks
// the link of the current section, for sight (a bar) and for screen readers
// (aria-current="page").
type section int

const (
	noSection section = iota // forget me, errors: no link is current
	homeSection
	booksSection
	authorsSection
	sectionCount
)

// navSections are the navigation's links, in order, and their sections.
var navSections = []struct {
	section     section
	href, label string
}{
	{homeSection, catalogPrefix + "/", "Home"},
	{booksSection, catalogPrefix + booksPath, "All books"},
	{authorsSection, catalogPrefix + authorsPath, "All authors"},
}

// navFor is the navigation with the link of current marked as current.
// It is built once per section, when the site is built.
func navFor(current section) []templates.NavLink {
	links := make([]templates.NavLink, len(navSections))
	for i, s := range navSections {
		links[i] = templates.NavLink{Href: templ.SafeURL(s.href), Label: s.label, Current: s.section == current}
	}
	return links
}
