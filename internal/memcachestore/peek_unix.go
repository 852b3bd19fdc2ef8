//go:build unix

package memcachestore

import (
	"errors"
	"syscall"
)

// peerClosed tells, without waiting or taking anything from it, whether the
// connection was closed by memcached (or was sent what nobody asked for)
// while it sat idle: after memcached restarts, every idle connection to it
// is dead, and the first operation lent one would fail.
func (c *slotConn) peerClosed() bool {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var b [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is the one answer of a sound idle
		// connection; end of stream, a byte or an error all mean it is not.
		closed = !errors.Is(err, syscall.EAGAIN)
		return true
	})
	return closed
}
