package memcachestore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// GetAndIncrement reads getKey and adds one to the counter incrKey in a
// single round trip: both commands go out in one write and their answers
// come back in one read. A returning visitor's page needs exactly these
// two, and on a loaded machine the system calls of a second round trip
// cost more than the rest of the page. gomemcache has no pipelining, so
// this one exchange is spoken here; everything else goes through it.
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
	probe, err := n.acquire(s.now())
	if err != nil {
		return nil, 0, false, err
	}
	val, count, counted, err = n.pipe.getAndIncr(gk, ik)
	n.release(probe, err, s.now())
	return val, count, counted, nodeError(n, err)
}

// getThenIncrement is GetAndIncrement in two round trips, for keys kept
// on two nodes: the counter goes up only for a value that exists.
func (s *Storage) getThenIncrement(getKey, incrKey string) ([]byte, uint64, bool, error) {
	val, err := s.Get(getKey)
	if err != nil || val == nil {
		return nil, 0, false, err
	}
	count, err := s.Increment(incrKey, 0)
	if err != nil {
		return nil, 0, false, err
	}
	return val, count, true, nil
}

// pipe is a node's small pool of plain connections for GetAndIncrement.
type pipe struct {
	addr    func() (net.Addr, error)
	timeout time.Duration
	maxIdle int

	mu   sync.Mutex
	idle []*pipeConn
}

type pipeConn struct {
	nc net.Conn
	rw *bufio.ReadWriter
}

var (
	crlf      = []byte("\r\n")
	end       = []byte("END\r\n")
	notFound  = []byte("NOT_FOUND\r\n")
	valueLine = []byte("VALUE ")
)

// errProtocol is an answer memcached should not have given.
var errProtocol = errors.New("memcachestore: unexpected answer from memcached")

func (p *pipe) getAndIncr(getKey, incrKey string) (val []byte, count uint64, counted bool, err error) {
	pc, err := p.conn()
	if err != nil {
		return nil, 0, false, err
	}
	defer func() {
		if err != nil {
			pc.nc.Close() // its state is unknown: never reused
			return
		}
		p.put(pc)
	}()
	if err := pc.nc.SetDeadline(time.Now().Add(p.timeout)); err != nil {
		return nil, 0, false, err
	}
	fmt.Fprintf(pc.rw, "get %s\r\nincr %s 1\r\n", getKey, incrKey)
	if err := pc.rw.Flush(); err != nil {
		return nil, 0, false, err
	}
	if val, err = readGet(pc.rw.Reader, getKey); err != nil {
		return nil, 0, false, err
	}
	line, err := pc.rw.ReadSlice('\n')
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

func (p *pipe) conn() (*pipeConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		pc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()
	addr, err := p.addr()
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout(addr.Network(), addr.String(), p.timeout)
	if err != nil {
		return nil, err
	}
	return &pipeConn{nc: nc, rw: bufio.NewReadWriter(bufio.NewReader(nc), bufio.NewWriter(nc))}, nil
}

func (p *pipe) put(pc *pipeConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.maxIdle {
		pc.nc.Close()
		return
	}
	p.idle = append(p.idle, pc)
}

// close drops the idle connections.
func (p *pipe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.idle {
		pc.nc.Close()
	}
	p.idle = nil
}
