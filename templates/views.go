package templates

import (
	"context"
	"database/sql"
	"strings"

	"github.com/a-h/templ"

	"github.com/locallibrary/locallibrary/repository"
)

// Chrome is what the layout shows around a page: worked out once per page
// kind at startup (the navigation with its current link, the hashed
// asset URLs), since no request changes it.
type Chrome struct {
	assetLinks Fragment // the links to the site's own static files
	sidebar    Fragment // the navigation
}

// NewChrome makes the chrome of a page kind and renders it once, so that
// no page renders it again.
func NewChrome(styleURL, iconURL templ.SafeURL, nav []NavLink) (*Chrome, error) {
	links, err := renderFragment(context.Background(), assetLinks(styleURL, iconURL))
	if err != nil {
		return nil, err
	}
	sidebar, err := renderFragment(context.Background(), sidebar(nav))
	if err != nil {
		return nil, err
	}
	return &Chrome{assetLinks: links, sidebar: sidebar}, nil
}

// Fragment is HTML that a component of this package rendered, kept to be
// written again as it is. Only this package makes one, from a component,
// so a Fragment is escaped as the component escapes.
type Fragment struct{ html string }

func renderFragment(ctx context.Context, c templ.Component) (Fragment, error) {
	var b strings.Builder
	if err := c.Render(ctx, &b); err != nil {
		return Fragment{}, err
	}
	return Fragment{html: b.String()}, nil
}

// CountsFragment renders the home page's counts (and, when stale, the
// notice that says so), for Home.Counts.
func CountsFragment(ctx context.Context, n repository.Counts, stale bool) (Fragment, error) {
	return renderFragment(ctx, catalogCounts(n, stale))
}

// NavLink is one link of the site's navigation.
type NavLink struct {
	Href    templ.SafeURL // one of the site's own paths
	Label   string
	Current bool // marked aria-current="page"
}

// Home is the home page's data, with what it derives worked out in Go.
type Home struct {
	Counts         Fragment // from CountsFragment
	CookiesRefused bool
	VisitsKnown    bool
	VisitsSentence string // the tutorial's "You have visited this page N times."
	ShowNoticeForm bool   // the demo notice, with its "Got it" form
	CSRFToken      string
}

// Pager is a list's Django-style paginator page.
type Pager struct {
	Number, Pages, Size  int
	PreviousURL, NextURL string // "" when there is no such page
	PerPageChoices       []int
}

// BookList is a page of /catalog/books/.
type BookList struct {
	Books []repository.BookSummary
	Pager Pager
}

// AuthorList is a page of /catalog/authors/.
type AuthorList struct {
	Authors []repository.Author
	Pager   Pager
}

// BookDetail is a book and its copies as the page shows them.
type BookDetail struct {
	Book   repository.Book
	Copies []Copy
}

// Copy is a copy of a book as its page shows it.
type Copy struct {
	ID, Imprint, Status string
	Label               string // the status in words
	Due                 string // the due date, shown for a copy that is not available
}

// Message is an error page, or any page that is a heading and a sentence.
type Message struct{ Heading, Message string }

// Forget is the "Forget me" page; without a token its form is not shown.
type Forget struct{ CSRFToken string }

// FormatDate is a date as the tutorial shows it: "Dec. 1, 2026".
func FormatDate(t sql.NullTime) string {
	if !t.Valid {
		return ""
	}
	return t.Time.Format("Jan. 2, 2006")
}

// lifespan is the tutorial's "born - died" line.
func lifespan(born, died sql.NullTime) string {
	return strings.TrimSpace(FormatDate(born) + " - " + FormatDate(died))
}
