//go:build !unix

package memcachestore

// peerClosed cannot look without reading here: a dead idle connection is
// found out by the operation lent it (see pool.put).
func (c *slotConn) peerClosed() bool { return false }
