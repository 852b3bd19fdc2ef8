package repository

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("counts: %w", context.DeadlineExceeded), true},
		{context.Canceled, true},
		{driver.ErrBadConn, true},
		{fmt.Errorf("query: %w", mysql.ErrInvalidConn), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{fmt.Errorf("book 7: %w", ErrNotFound), false},
		{&mysql.MySQLError{Number: 1064, Message: "syntax error"}, false},
		{errors.New("a bug"), false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := IsUnavailable(tt.err); got != tt.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
