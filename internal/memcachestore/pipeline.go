package memcachestore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// GetAndIncrement reads getKey and adds one to the counter incrKey in a
// single round trip: both commands go out in one write and their answers
// come back in one read. A returning visitor's page needs exactly these
// two, and on a loaded machine the system calls of a second round trip
// cost more than the rest of the page. gomemcache has no pipelining, so
// this one exchange is spoken here, on the same pooled connection that
// gomemcache uses (see pool); everything else goes through gomemcache.
//
// It returns the value (nil when missing), the counter's new value and
// whether the counter existed: a missing counter is not created, since the
// caller decides from the value whether it belongs to a real session.
//
// The two keys must share their nodes (see placement) and the Storage must
// keep one copy of each key; otherwise the two operations are made one
// after the other, as Get and a plain increment.
func (s *Storage) GetAndIncrement(getKey, incrKey string) (val []byte, count uint64, counted bool, err error) {
	defer s.record("get_and_increment", time.Now(), &err)
	gk, ok := s.key(getKey)
	if !ok {
		return nil, 0, false, nil // nothing can be stored under it
	}
	ik, ok := s.key(incrKey)
	if !ok {
		return nil, 0, false, fmt.Errorf("memcachestore: increment a %d-byte key: %w", len(incrKey), ErrInvalidKey)
	}
	owners := s.owners(gk)
	if s.replicas != 1 || owners[0] != s.owners(ik)[0] {
		return s.getThenIncrement(getKey, incrKey)
	}
	n := owners[0]
	err = n.do(func(s *slot) (err error) {
		val, count, counted, err = getAndIncr(s, gk, ik)
		return err
	})
	return val, count, counted, nodeError(n, err)
}

// getThenIncrement is GetAndIncrement in two round trips, for keys kept
// on two nodes: the counter goes up only for a value that exists.
//
// A counter copy that had to be created shows that its node lost what it
// held (a restart): the value read is written back there too (RepairTTL),
// so a second node failing later loses nothing. Get repairs only the copy
// it reads first.
func (s *Storage) getThenIncrement(getKey, incrKey string) ([]byte, uint64, bool, error) {
	val, err := s.Get(getKey)
	if err != nil || val == nil {
		return nil, 0, false, err
	}
	ik, _ := s.key(incrKey) // checked by the caller
	count, lost, err := s.increment(ik, 0)
	if err != nil {
		return nil, 0, false, err
	}
	if s.repairTTL > 0 {
		gk, _ := s.key(getKey)
		item := &memcache.Item{Key: gk, Value: val, Expiration: expiry(s.repairTTL, time.Now())}
		for _, n := range lost {
			if slices.Contains(s.owners(gk), n) { // the keys share their nodes (Config.Place)
				_ = s.on(n, func(c *memcache.Client) error { return c.Add(item) })
			}
		}
	}
	return val, count, true, nil
}

var (
	crlf      = []byte("\r\n")
	end       = []byte("END\r\n")
	notFound  = []byte("NOT_FOUND\r\n")
	valueLine = []byte("VALUE ")
)

// errProtocol is an answer memcached should not have given.
var errProtocol = errors.New("memcachestore: unexpected answer from memcached")

// getAndIncr speaks the exchange on s's connection. On any error the
// connection is closed: what is left unread on it is unknown.
func getAndIncr(s *slot, getKey, incrKey string) (val []byte, count uint64, counted bool, err error) {
	nc, rw, err := s.pipe()
	if err != nil {
		return nil, 0, false, err
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := nc.SetDeadline(time.Now().Add(s.mc.Timeout)); err != nil {
		return nil, 0, false, err
	}
	fmt.Fprintf(rw, "get %s\r\nincr %s 1\r\n", getKey, incrKey)
	if err := rw.Flush(); err != nil {
		return nil, 0, false, err
	}
	if val, err = readGet(rw.Reader, getKey); err != nil {
		return nil, 0, false, err
	}
	line, err := rw.ReadSlice('\n')
	switch {
	case err != nil:
		return nil, 0, false, err
	case bytes.Equal(line, notFound):
		return val, 0, false, nil
	}
	count, err = strconv.ParseUint(string(bytes.TrimSuffix(line, crlf)), 10, 64)
	if err != nil {
		return nil, 0, false, fmt.Errorf("%w: incr answered %q", errProtocol, line)
	}
	return val, count, true, nil
}

// readGet reads the answer to "get key": one VALUE block or none, then END.
func readGet(r *bufio.Reader, key string) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if bytes.Equal(line, end) {
		return nil, nil
	}
	// VALUE <key> <flags> <bytes>\r\n
	fields := bytes.Fields(bytes.TrimPrefix(line, valueLine))
	if !bytes.HasPrefix(line, valueLine) || len(fields) < 3 || string(fields[0]) != key {
		return nil, fmt.Errorf("%w: get answered %q", errProtocol, line)
	}
	size, err := strconv.Atoi(string(fields[2]))
	if err != nil || size < 0 {
		return nil, fmt.Errorf("%w: get answered %q", errProtocol, line)
	}
	val := make([]byte, size+2)
	if _, err := io.ReadFull(r, val); err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(val, crlf) {
		return nil, fmt.Errorf("%w: value not ended by CRLF", errProtocol)
	}
	if line, err = r.ReadSlice('\n'); err != nil {
		return nil, err
	}
	if !bytes.Equal(line, end) {
		return nil, fmt.Errorf("%w: get answered %q after the value", errProtocol, line)
	}
	return val[:size], nil
}
