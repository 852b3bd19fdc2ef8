package repository

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/singleflight"
)

// markEvery is how many rows of a list lie between two marks. Pages of
// 10 and 50 rows then start on a mark, pages of 25 on one or 5 rows after
// one (MariaDB reads a row it skips for about 2 µs); 100,000 books keep
// 10,000 marks, under a megabyte.
const markEvery = 10

// marksRefreshTimeout bounds one read of a list's marks in the background.
const marksRefreshTimeout = 30 * time.Second

// sortKey is a row's position in a list's order: (title, id) for books,
// (last name, first name, id) for authors (Second is empty for books).
type sortKey struct {
	First  string `db:"k1"`
	Second string `db:"k2"`
	ID     int64  `db:"id"`
}

// listMarks is a sparse index of a list's sort order: the key of every
// markEvery-th row. A page at any offset is then read by seeking the sort
// index to the mark at or before it and skipping fewer than markEvery
// rows, so page 10,000 costs what page 1 costs, where OFFSET would walk
// every row before it.
//
// The marks are read again in the background once older than ttl. Until
// then a row added or removed before a mark shifts the pages after it by
// that many rows: the lists are as fresh as the marks, never older than ttl.
type listMarks struct {
	db    *sqlx.DB
	query string // the keys of the whole list, in order, as k1, k2, id
	ttl   time.Duration

	latest  atomic.Pointer[markSet]
	refresh singleflight.Group
}

type markSet struct {
	keys      []sortKey // keys[j] is the key of row j*markEvery (0-based)
	fetchedAt time.Time
}

// seek returns the key to start from and how many rows to skip after it to
// reach offset. ok is false when no marks are known (they could not be
// read): the caller then reads the page with a plain OFFSET.
func (m *listMarks) seek(ctx context.Context, offset int) (from sortKey, skip int, ok bool) {
	set := m.latest.Load()
	switch {
	case set == nil:
		// Until the process has marks, a page waits for them as long as
		// it may; the read goes on without it (reading a large list's
		// index can take longer than a page may wait), and the page is
		// read with OFFSET meanwhile.
		select {
		case res := <-m.refresh.DoChan("marks", m.loadInBackground):
			if res.Err != nil {
				return sortKey{}, 0, false
			}
			set = res.Val.(*markSet)
		case <-ctx.Done():
			return sortKey{}, 0, false
		}
	case time.Since(set.fetchedAt) >= m.ttl:
		m.refresh.DoChan("marks", m.loadInBackground)
	}
	j := min(offset/markEvery, len(set.keys)-1)
	if j < 0 {
		return sortKey{}, 0, false // an empty list
	}
	return set.keys[j], offset - j*markEvery, true
}

// loadInBackground runs load on a deadline of its own, not a page's.
func (m *listMarks) loadInBackground() (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), marksRefreshTimeout)
	defer cancel()
	return m.load(ctx)
}

// load reads the whole sort index once and keeps every markEvery-th key.
// It streams the index-only scan rather than numbering rows in SQL: a
// window function makes MariaDB sort in a temporary table, several times
// slower at 100,000 books.
func (m *listMarks) load(ctx context.Context) (*markSet, error) {
	rows, err := m.db.QueryxContext(ctx, m.query)
	if err != nil {
		return nil, fmt.Errorf("read list marks: %w", err)
	}
	defer rows.Close()
	set := &markSet{fetchedAt: time.Now()}
	for n := 0; rows.Next(); n++ {
		if n%markEvery != 0 {
			continue
		}
		var k sortKey
		if err := rows.StructScan(&k); err != nil {
			return nil, fmt.Errorf("read list marks: %w", err)
		}
		set.keys = append(set.keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read list marks: %w", err)
	}
	m.latest.Store(set)
	return set, nil
}
