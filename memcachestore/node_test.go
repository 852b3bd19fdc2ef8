package memcachestore

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestOnlyRepeatedTimeoutsTakeANodeOut(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name     string
		errs     []error
		wantDown bool
	}{
		{"one timeout", []error{timeoutError{}}, false},
		{"two timeouts", []error{timeoutError{}, timeoutError{}}, false},
		{"three timeouts in a row", []error{timeoutError{}, timeoutError{}, timeoutError{}}, true},
		{"timeouts broken by an answer", []error{timeoutError{}, timeoutError{}, nil, timeoutError{}}, false},
		{"a refused connection", []error{refused}, true},
		{"a miss is an answer", []error{memcache.ErrCacheMiss}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &node{name: "n"}
			for _, err := range tt.errs {
				probe, aerr := n.acquire(now)
				if aerr != nil {
					t.Fatalf("node skipped before the end: %v", aerr)
				}
				n.release(probe, err, now)
			}
			if _, err := n.acquire(now); (err != nil) != tt.wantDown {
				t.Errorf("node skipped = %v, want %v", err != nil, tt.wantDown)
			}
		})
	}
}
