package repository

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"

	"github.com/go-sql-driver/mysql"
)

// The kinds of error the repository's callers tell apart: ErrNotFound
// (catalog.go) for a row that does not exist, and IsUnavailable for a
// database that did not answer.

// IsUnavailable tells whether err means MySQL could not be reached or did
// not answer in time (a connection refused or dropped, a deadline), as
// opposed to a bug or a missing row: worth a retry, not a 500.
func IsUnavailable(err error) bool {
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) ||
		errors.As(err, &netErr)
}
