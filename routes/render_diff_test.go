package routes

import (
	"bytes"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/internal/tmplexec"
	"github.com/locallibrary/locallibrary/repository"
)

// pageSets parses the pages twice over: html/template's sets, and the
// renderer tmplexec makes of them.
type pageSets struct {
	parsed map[string]parsedPage
	exec   map[string]*tmplexec.Template
}

func mustPageSets(tb testing.TB) pageSets {
	tb.Helper()
	a, err := loadAssets()
	if err != nil {
		tb.Fatal(err)
	}
	parsed, err := parsePages(a)
	if err != nil {
		tb.Fatal(err)
	}
	sets := pageSets{parsed: parsed, exec: map[string]*tmplexec.Template{}}
	for name, p := range parsed {
		if sets.exec[name], err = tmplexec.New(p.tmpl, p.funcs); err != nil {
			tb.Fatal(err)
		}
	}
	return sets
}

// same fails unless tmplexec renders data as html/template does, byte for
// byte, or both fail.
func (sets pageSets) same(t testing.TB, name string, data any) {
	t.Helper()
	var want bytes.Buffer
	wantErr := sets.parsed[name].tmpl.Execute(&want, data)
	got, gotErr := sets.exec[name].Execute(nil, data)
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Fatalf("page %s, data %+v: html/template error %v, tmplexec error %v", name, data, wantErr, gotErr)
	case wantErr == nil && !bytes.Equal(got, want.Bytes()):
		t.Fatalf("page %s, data %+v: tmplexec differs from html/template:\n%s\n---\n%s", name, data, got, want.Bytes())
	}
}

// adversarial are strings that each escaper must treat exactly as
// html/template does.
var adversarial = []string{
	"", "plain", `<script>alert(1)</script>`, `"quoted" and 'single'`, "a & b + c", "nul\x00byte",
	"javascript:alert(1)", "JavaScript:alert(1)", "mailto:a@b.c", "https://example.com/a?b=c&d=e#f",
	"/catalog/books/?q=<x>&y=\"z\"", "%41%zz%", "Ünïcödé ✓ 日本語", "\ufdd0\ufffe\U0001F600", "\xff\xfe invalid",
	"tab\tnew\nline", "a=b c`d", "&amp;&lt;", "]]><!--",
}

func TestRenderMatchesHTMLTemplate(t *testing.T) {
	sets := mustPageSets(t)
	date := func(y int) sql.NullTime {
		return sql.NullTime{Time: time.Date(y, 5, 6, 0, 0, 0, 0, time.UTC), Valid: true}
	}
	for _, name := range pageNames {
		if _, ok := sets.exec[name]; !ok {
			t.Fatalf("no renderer for page %s", name)
		}
	}

	counts := []repository.Counts{{}, {Books: 3, Copies: 9, CopiesAvailable: 2, Authors: 1, Genres: 4},
		{Books: 1 << 40, Copies: -1, CopiesAvailable: 99, Authors: 100, Genres: 1000001}}
	for _, n := range counts {
		for _, p := range []homePage{
			{Counts: n, Visits: 1, VisitsKnown: true},
			{Counts: n, Visits: 12345, VisitsKnown: true, ShowNotice: true, CSRFToken: "k3J9xQ2mV8pL5nR7tY1w"},
			{Counts: n, CountsStale: true, Visits: 0, VisitsKnown: true, ShowNotice: true}, // a notice without a token has no form
			{Counts: n, CookiesRefused: true},
			{Counts: n, CountsStale: true},
		} {
			sets.same(t, "home", p.complete())
			sets.same(t, "home", p) // VisitsSentence and ShowNoticeForm left empty
		}
	}
	for _, s := range adversarial {
		sets.same(t, "home", homePage{Visits: 2, VisitsKnown: true, ShowNotice: true, CSRFToken: s}.complete())
		sets.same(t, "error", errorPage{Heading: s, Message: s + s})
		sets.same(t, "forget", forgetPageData{CSRFToken: s})
	}
	sets.same(t, "error", errorPage{})
	sets.same(t, "forget", forgetPageData{})

	pagers := []pager{
		{Number: 1, Pages: 1, Size: 10, path: "/catalog/books/"},
		{Number: 1, Pages: 5, Size: 10, path: "/catalog/books/"},
		{Number: 3, Pages: 5, Size: 25, path: "/catalog/authors/"},
		{Number: 5, Pages: 5, Size: 50, path: "/catalog/books/"},
		{Number: 2, Pages: 3, Size: 7, path: "javascript:alert(1)"},
		{Number: 2, Pages: 3, Size: 10, path: "/a b/<\"'>&+%zz/"},
	}
	for _, pg := range pagers {
		for _, items := range [][]repository.BookSummary{nil, {}, summaries(adversarial)} {
			sets.same(t, "book_list", listPage[repository.BookSummary]{Items: items, Pager: pg, PerPageChoices: perPageChoices})
		}
		var authors []repository.Author
		for i, s := range adversarial {
			a := repository.Author{ID: int64(i + 1), FirstName: s, LastName: adversarial[len(adversarial)-1-i]}
			if i%3 == 0 {
				a.DateOfBirth = date(1815)
			}
			if i%2 == 0 {
				a.DateOfDeath = date(1852)
			}
			authors = append(authors, a)
		}
		sets.same(t, "author_list", listPage[repository.Author]{Items: authors, Pager: pg, PerPageChoices: perPageChoices})
		sets.same(t, "author_list", listPage[repository.Author]{Pager: pg, PerPageChoices: []int{}})
	}

	for i, s := range adversarial {
		book := repository.Book{ID: int64(i), Title: s, Summary: s + "\n" + s, ISBN: s}
		if i%2 == 1 {
			book.AuthorID = sql.NullInt64{Int64: int64(i), Valid: true}
			book.AuthorFirstName = sql.NullString{String: s, Valid: true}
			book.AuthorLastName = sql.NullString{String: strings.ToUpper(s), Valid: i%3 != 0}
			book.Language = sql.NullString{String: s, Valid: true}
		}
		book.Genres = adversarial[:i%4]
		for j := range i % 12 { // zero to eleven copies
			book.Copies = append(book.Copies, repository.Copy{ID: adversarial[j], Imprint: s,
				Status: []string{"a", "o", "m", "r", s}[j%5], DueBack: date(2030 + j)})
		}
		sets.same(t, "book_detail", newBookDetailPage(book))
		sets.same(t, "author_detail", authorDetailPage{repository.AuthorDetail{
			Author: repository.Author{ID: int64(i), FirstName: s, DateOfBirth: date(1900)}, Books: summaries(adversarial[:i])}})
	}
	sets.same(t, "book_detail", bookDetailPage{})
	sets.same(t, "author_detail", authorDetailPage{})
}

// summaries are books titled and authored by the given strings, every
// other one without an author.
func summaries(titles []string) []repository.BookSummary {
	var books []repository.BookSummary
	for i, s := range titles {
		b := repository.BookSummary{ID: int64(i + 1), Title: s}
		if i%2 == 0 {
			b.AuthorID = sql.NullInt64{Int64: int64(i), Valid: true}
			b.AuthorFirstName = sql.NullString{String: s, Valid: true}
			b.AuthorLastName = sql.NullString{String: s + s, Valid: true}
		}
		books = append(books, b)
	}
	return books
}

func FuzzRenderMatchesHTMLTemplate(f *testing.F) {
	for i, s := range adversarial {
		f.Add(s, adversarial[len(adversarial)-1-i], adversarial[(i+5)%len(adversarial)])
	}
	sets := mustPageSets(f)
	f.Fuzz(func(t *testing.T, a, b, c string) {
		sets.same(t, "home", homePage{Visits: 3, VisitsKnown: true, ShowNotice: true, CSRFToken: a}.complete())
		sets.same(t, "error", errorPage{Heading: a, Message: b})
		sets.same(t, "forget", forgetPageData{CSRFToken: c})
		sets.same(t, "book_list", listPage[repository.BookSummary]{Items: summaries([]string{a, b, c}),
			Pager: pager{Number: 2, Pages: 3, Size: 25, path: c}, PerPageChoices: perPageChoices})
		sets.same(t, "author_list", listPage[repository.Author]{Items: []repository.Author{{ID: 1, FirstName: a, LastName: b}},
			Pager: pager{Number: 1, Pages: 2, Size: 10, path: a}, PerPageChoices: perPageChoices})
		sets.same(t, "book_detail", newBookDetailPage(repository.Book{ID: 1, Title: a, Summary: b, ISBN: c,
			AuthorID: sql.NullInt64{Valid: true}, AuthorFirstName: sql.NullString{String: b, Valid: true},
			Language: sql.NullString{String: c, Valid: true}, Genres: []string{a, b},
			Copies: []repository.Copy{{ID: a, Imprint: b, Status: c}, {ID: c, Imprint: a, Status: "o"}}}))
		sets.same(t, "author_detail", authorDetailPage{repository.AuthorDetail{
			Author: repository.Author{ID: 1, FirstName: a, LastName: b}, Books: summaries([]string{c})}})
	})
}
