package routes

// section is the part of the site a page belongs to. The navigation marks
// the link of the current section, for sight (a bar) and for screen readers
// (aria-current="page").
type section int

const (
	noSection section = iota // forget me, errors: no link is current
	homeSection
	booksSection
	authorsSection
)

// pageSections places each page in a section: a book's page belongs to the
// books, an author's to the authors. Pages not listed belong to none.
var pageSections = map[string]section{
	"home":          homeSection,
	"book_list":     booksSection,
	"book_detail":   booksSection,
	"author_list":   authorsSection,
	"author_detail": authorsSection,
}

// navLink is one link of the site's navigation as the layout shows it.
type navLink struct {
	Href, Label string
	Current     bool
}

// navSections are the navigation's links, in order, and their sections.
var navSections = []struct {
	section     section
	href, label string
}{
	{homeSection, "/catalog/", "Home"},
	{booksSection, "/catalog/books/", "All books"},
	{authorsSection, "/catalog/authors/", "All authors"},
}

// navFor is the navigation with the link of current marked as current.
// It is built once per page template, when the templates are parsed.
func navFor(current section) []navLink {
	links := make([]navLink, len(navSections))
	for i, s := range navSections {
		links[i] = navLink{Href: s.href, Label: s.label, Current: s.section == current}
	}
	return links
}
