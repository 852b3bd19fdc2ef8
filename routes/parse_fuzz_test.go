package routes

import (
	"strconv"
	"testing"
)

// FuzzParseID: an id is accepted only as a canonical positive decimal.
func FuzzParseID(f *testing.F) {
	for _, seed := range []string{"1", "0", "-1", "+1", "01", "9223372036854775807", "9223372036854775808", "1e3", " 1", "1\x00", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := parseID(raw)
		if err != nil {
			return
		}
		if id <= 0 {
			t.Fatalf("parseID(%q) = %d", raw, id)
		}
		if back := strconv.FormatInt(id, 10); back != raw && "0"+back != raw && raw[0] != '0' {
			t.Fatalf("parseID(%q) = %d, which is not what was written", raw, id)
		}
	})
}

// FuzzPaginate: a page is either a 404 or a page within range.
func FuzzPaginate(f *testing.F) {
	for _, seed := range []string{"", "1", "2", "last", "0", "-5", "+2", "abc", "99999999999999999999", "3 "} {
		f.Add(seed, int64(25))
	}
	f.Fuzz(func(t *testing.T, raw string, total int64) {
		if total < 0 || total > 1<<40 {
			return
		}
		p, err := paginate(raw, total, defaultPerPage, "/catalog/books/")
		if err != nil {
			return
		}
		if p.Number < 1 || p.Number > p.Pages || p.offset() < 0 || int64(p.offset()) > max(total-1, 0) {
			t.Fatalf("paginate(%q, %d) = page %d of %d, offset %d", raw, total, p.Number, p.Pages, p.offset())
		}
	})
}
