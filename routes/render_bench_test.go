package routes

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/repository"
	"github.com/locallibrary/locallibrary/templates"
)

// BenchmarkBookDetailRender is what rendering an uncached book page costs
// the service: a book with two genres and ten copies, as the 1,000,000-copy
// catalog has.
func BenchmarkBookDetailRender(b *testing.B) {
	r := mustRenderer(b)
	ctx := context.Background()
	book := repository.Book{ID: 4242, Title: "The Quiet Harbour of Evening", Summary: "A long summary of the book, a sentence or two.",
		ISBN: "9781234567897", AuthorID: sql.NullInt64{Int64: 7, Valid: true},
		AuthorFirstName: sql.NullString{String: "Ada", Valid: true}, AuthorLastName: sql.NullString{String: "Lovelace", Valid: true},
		Language: sql.NullString{String: "English", Valid: true}, Genres: []string{"Fantasy", "Poetry"}}
	for i := range 10 {
		book.Copies = append(book.Copies, repository.Copy{ID: "6f1c2d3e-0000-4000-8000-00000000000" + strconv.Itoa(i),
			Imprint: "Harbour Press, 2016", Status: "o", DueBack: sql.NullTime{Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Valid: true}})
	}
	b.ReportAllocs()
	for b.Loop() {
		view := newBookDetail(book)
		if _, err := r.bytes(ctx, templates.BookDetailPage(r.in(booksSection), &view)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHomePageRender is the home page's template alone, with the
// notice and its form shown.
func BenchmarkHomePageRender(b *testing.B) {
	r := mustRenderer(b)
	ctx := context.Background()
	counts, err := templates.CountsFragment(ctx, repository.Counts{Books: 100000, Copies: 1000000, CopiesAvailable: 345678, Authors: 25000, Genres: 12}, false)
	if err != nil {
		b.Fatal(err)
	}
	page := homePage{Counts: counts,
		Visits: 42, VisitsKnown: true, ShowNotice: true, CSRFToken: "k3J9xQ2mV8pL5nR7tY1wZ4aB6cD0eF2gH"}
	b.ReportAllocs()
	for b.Loop() {
		view := page.complete()
		if _, err := r.bytes(ctx, templates.HomePage(r.in(homeSection), &view)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBookListRender is an uncached page of the book list: ten
// books, with the pager on a middle page.
func BenchmarkBookListRender(b *testing.B) {
	r := mustRenderer(b)
	ctx := context.Background()
	p := pager{Number: 7, Pages: 100, Size: 10, path: "/catalog/books/"}
	var books []repository.BookSummary
	for i := range 10 {
		books = append(books, repository.BookSummary{ID: int64(4200 + i), Title: "The Quiet Harbour of Evening",
			AuthorID: sql.NullInt64{Int64: 7, Valid: true}, AuthorFirstName: sql.NullString{String: "Ada", Valid: true},
			AuthorLastName: sql.NullString{String: "Lovelace", Valid: true}})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bookList(r)(ctx, books, p.view()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthorListRender is an uncached page of the author list: each
// row calls the Name method and works out the lifespan.
func BenchmarkAuthorListRender(b *testing.B) {
	r := mustRenderer(b)
	ctx := context.Background()
	p := pager{Number: 1, Pages: 100, Size: 10, path: "/catalog/authors/"}
	var authors []repository.Author
	born := sql.NullTime{Time: time.Date(1815, 12, 10, 0, 0, 0, 0, time.UTC), Valid: true}
	for i := range 10 {
		authors = append(authors, repository.Author{ID: int64(700 + i), FirstName: "Ada", LastName: "Lovelace", DateOfBirth: born})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authorList(r)(ctx, authors, p.view()); err != nil {
			b.Fatal(err)
		}
	}
}
