package routes_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/repository/repotest"
	"github.com/locallibrary/locallibrary/routes"
)

// hostile is catalog text that would become markup, an event handler or a
// link target if any page wrote it unescaped: a script, attribute
// breakers of both quotes, a javascript: URL, template syntax and the end
// of the title. Each field gets its own, told apart by its tag.
func hostile(tag string) string {
	return tag + ` <script>x()</script>" onmouseover="x()' autofocus onfocus='x() javascript:x() {{.}}</title>`
}

// TestHostileCatalogTextStaysText writes hostile text into every field a
// page shows, in a real MariaDB, and parses every page kind: the text
// must come back as text (element text, the title, link text), and the
// parsed tree must have no script, no event-handler or autofocus
// attribute and no link outside the site.
func TestHostileCatalogTextStaysText(t *testing.T) {
	db := repotest.MustMariaDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO author (id, first_name, last_name, date_of_birth) VALUES (1, ?, ?, '1815-12-10')`, []any{hostile("F"), hostile("L")}},
		{`INSERT INTO language (id, name) VALUES (1, ?)`, []any{hostile("Lang")}},
		{`INSERT INTO genre (id, name) VALUES (1, ?)`, []any{hostile("Genre")}},
		{`INSERT INTO book (id, title, author_id, summary, isbn, language_id) VALUES (1, ?, 1, ?, '9780000000001', 1)`, []any{hostile("Title"), hostile("Summary")}},
		{`INSERT INTO book_genre (book_id, genre_id) VALUES (1, 1)`, nil},
		{`INSERT INTO book_instance (id, book_id, imprint, due_back, status) VALUES ('0b7e3c1e-3f7a-4c39-9a3e-1c2d3e4f5a6b', 1, ?, '2031-05-06', 'o')`, []any{hostile("Imprint")}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	app := mustApp(t, routes.Deps{Catalog: repository.NewCatalog(db, repository.CatalogOptions{})})

	pages := map[string][]string{ // each page, and the fields it shows
		"/catalog/?cookies=check": nil,
		"/catalog/books/":         {"Title", "L", "F"},
		"/catalog/authors/":       {"L", "F"},
		"/catalog/book/1":         {"Title", "Summary", "L", "F", "Lang", "Genre", "Imprint"},
		"/catalog/author/1":       {"L", "F", "Title"},
	}
	titles := map[string]string{
		"/catalog/book/1":   hostile("Title") + " | Local Library",
		"/catalog/author/1": hostile("L") + ", " + hostile("F") + " | Local Library",
	}
	for path, fields := range pages {
		r := get(t, app, "GET", path)
		if r.status != 200 {
			t.Fatalf("%s: %d", path, r.status)
		}
		doc, err := html.Parse(strings.NewReader(r.body))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var text strings.Builder
		var titleTexts []string
		for n := range doc.Descendants() {
			switch n.Type {
			case html.TextNode:
				text.WriteString(n.Data)
				if n.Parent != nil && n.Parent.DataAtom == atom.Title {
					titleTexts = append(titleTexts, n.Data)
				}
			case html.ElementNode:
				if n.DataAtom == atom.Script || n.DataAtom == atom.Style {
					t.Errorf("%s: a <%s> element", path, n.Data)
				}
				for _, a := range n.Attr {
					key := strings.ToLower(a.Key)
					if strings.HasPrefix(key, "on") || key == "autofocus" || strings.ContainsAny(key, `"'<>/={}`) {
						t.Errorf("%s: <%s> has attribute %q=%q", path, n.Data, a.Key, a.Val)
					}
					if (key == "href" || key == "action" || key == "src") && !strings.HasPrefix(a.Val, "/") && !strings.HasPrefix(a.Val, "#") {
						t.Errorf("%s: <%s %s=%q> leads off the site", path, n.Data, a.Key, a.Val)
					}
				}
			}
		}
		if len(titleTexts) != 1 {
			t.Errorf("%s: title texts %q, want one", path, titleTexts)
		} else if want, ok := titles[path]; ok && titleTexts[0] != want {
			t.Errorf("%s: title %q, want %q", path, titleTexts[0], want)
		}
		for _, f := range fields {
			if !strings.Contains(text.String(), hostile(f)) {
				t.Errorf("%s does not show field %s as text", path, f)
			}
		}
	}
}
