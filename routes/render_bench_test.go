package routes

import (
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/locallibrary/locallibrary/repository"
)

// BenchmarkBookDetailRender is what rendering an uncached book page costs
// the service: a book with two genres and ten copies, as the 1,000,000-copy
// catalog has.
func BenchmarkBookDetailRender(b *testing.B) {
	r := mustRenderer(b)
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
		if _, err := r.bytes("book_detail", newBookDetailPage(book)); err != nil {
			b.Fatal(err)
		}
	}
}
