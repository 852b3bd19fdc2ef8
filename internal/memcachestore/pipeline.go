package memcachestore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// The reads of a page (a get, or the home page's get and incr) are
// pipelined automatically: the reads of pages in flight at the same moment
// go to their node in one write and come back in one read. gomemcache has
// no pipelining, and the Go clients that have it do not fit (in 2026:
// QuangTung97/go-memcache pipelines meta get/set/delete only, no
// arithmetic; jsp-lqk/metapipe-memcached calls itself untested; the
// pipelining branch of gomemcache is unreleased), so the exchange is
// spoken here, on the pool's connections; every write goes through
// gomemcache.
//
// Design: "the first caller becomes the flusher". A read is queued on its
// node; if no exchange is being made there, its caller leads one at once
// (so a page alone waits for nothing), otherwise it waits. The leader
// takes the whole queue, writes it in one write on one pooled connection,
// reads the answers in order and, before handing them out, passes the
// lead to the first read queued meanwhile. One exchange at a time per
// node: pages that arrive during it form the next batch, so the busier
// the site, the larger the batches and the fewer the system calls, on
// both sides, per page.

// maxBatch bounds the reads of one exchange (and so its buffers: keys are
// at most 250 bytes); more wait for the next one.
const maxBatch = 128

// maxGetLine bounds a multi-key get line, well inside memcached's 2048-byte
// command limit for lines it has to buffer whole.
const maxGetLine = 1900

// MaxItemSize is the largest value Storage stores or accepts in an answer:
// memcached's default item size limit (-I 1m). An answer declaring more is
// refused before anything is allocated for it.
const MaxItemSize = 1 << 20

// read is one page's get (and incr, when incrKey is set), queued on a node
// for an exchange.
type read struct {
	getKey, incrKey string
	queued          time.Time
	turn            chan bool // true: lead the next exchange; false: answered

	done     bool // answered, or given its error
	endsLine bool // the last key of its get line (see speak)
	val      []byte
	count    uint64
	counted  bool
	err      error
}

var reads = sync.Pool{New: func() any { return &read{turn: make(chan bool, 1)} }}

// batcher is a node's queue of reads and the one exchange's buffers.
type batcher struct {
	mu      sync.Mutex
	queue   []*read
	spare   []*read // the last batch's slice, for the next queue
	leading bool    // an exchange is being made; the queue waits for it

	// Used by the leader only: the lead passes under mu.
	out []byte
	in  *bufio.Reader
}

// getAndIncr reads getKey from n and, with incrKey set, increments that
// counter, in n's next exchange. It returns what read holds once answered.
func (n *node) getAndIncr(getKey, incrKey string) (val []byte, count uint64, counted bool, err error) {
	r := reads.Get().(*read)
	r.getKey, r.incrKey, r.queued = getKey, incrKey, time.Now()
	b := &n.batch
	b.mu.Lock()
	b.queue = append(b.queue, r)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	if lead || <-r.turn {
		n.lead(r)
	}
	val, count, counted, err = r.val, r.count, r.counted, r.err
	if err != nil {
		val, count, counted = nil, 0, false
	}
	*r = read{turn: r.turn}
	reads.Put(r)
	return val, count, counted, err
}

// lead makes one exchange of the queued reads (own among them), passes
// the lead on and hands out the answers.
func (n *node) lead(own *read) {
	b := &n.batch
	b.mu.Lock()
	batch := b.queue
	if len(batch) > maxBatch {
		batch, b.queue = batch[:maxBatch:maxBatch], slices.Clone(batch[maxBatch:])
	} else {
		b.queue, b.spare = b.spare[:0], nil
	}
	b.mu.Unlock()
	defer n.handOff(own, batch)
	n.exchange(batch)
}

// handOff passes the lead to the first read queued, or ends it, then hands
// out batch's answers. It is deferred: a panic in the exchange must not
// leave the node without a leader or its pages waiting.
func (n *node) handOff(own *read, batch []*read) {
	b := &n.batch
	failAll(batch, errors.New("memcachestore: the exchange did not finish"))
	b.mu.Lock()
	if len(b.queue) > 0 {
		b.queue[0].turn <- true
	} else {
		b.leading = false
	}
	b.mu.Unlock()
	for _, r := range batch {
		if r != own {
			r.turn <- false // r belongs to its caller from here on
		}
	}
	clear(batch)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = batch[:0]
	}
	b.mu.Unlock()
}

// exchange answers every read of batch, with an error where it must. A
// read that waited a whole timeout for its turn fails as if no connection
// had been free; a transport failure fails the reads still unanswered and
// takes the node out (see node); a bad answer fails them and costs the
// connection, nothing else.
func (n *node) exchange(batch []*read) {
	live := 0
	now := time.Now()
	for _, r := range batch {
		if now.Sub(r.queued) > n.pool.timeout {
			r.done, r.err = true, fmt.Errorf("%s: %w", n.name, errPoolBusy)
		} else {
			live++
		}
	}
	if live == 0 {
		return
	}
	err := n.do(func(s *slot) error { return n.speak(s, batch) })
	failAll(batch, err) // the pool's or the admission's error; speak's are given already
}

// failAll gives err to every read of batch not already answered.
func failAll(batch []*read, err error) {
	if err == nil {
		return
	}
	for _, r := range batch {
		if !r.done {
			r.done, r.err = true, err
		}
	}
}

// speak writes batch's live reads on s's connection in one write and reads
// their answers in order. The gets go as multi-key get lines, then the
// incrs: memcached (1.6) answers every get command with a send of its own
// but a line of keys with one, so a batch costs it a few system calls in
// all. It returns the error that ended the exchange early, after giving it
// to every read left unanswered.
func (n *node) speak(s *slot, batch []*read) (err error) {
	b := &n.batch
	defer func() {
		if err != nil {
			s.close() // what is left unread on it is unknown
			failAll(batch, nodeError(n, err))
		}
	}()
	nc, err := s.conn()
	if err != nil {
		return err
	}
	if err := nc.SetDeadline(time.Now().Add(n.pool.timeout)); err != nil {
		return err
	}
	b.out = b.out[:0]
	lineStart := -1 // where the open get line starts in out
	var last *read  // the last read of the open get line
	for _, r := range batch {
		if r.done {
			continue
		}
		if lineStart >= 0 && len(b.out)-lineStart+1+len(r.getKey) > maxGetLine {
			b.out, lineStart, last.endsLine = append(b.out, "\r\n"...), -1, true
		}
		if lineStart < 0 {
			lineStart = len(b.out)
			b.out = append(b.out, "get"...)
		}
		b.out = append(append(b.out, ' '), r.getKey...)
		last = r
	}
	if last == nil {
		return nil
	}
	b.out, last.endsLine = append(b.out, "\r\n"...), true
	for _, r := range batch {
		if !r.done && r.incrKey != "" {
			b.out = append(append(append(b.out, "incr "...), r.incrKey...), " 1\r\n"...)
		}
	}
	if _, err := nc.Write(b.out); err != nil {
		return err
	}
	if b.in == nil {
		// Sized for a batch of small sessions in one read system call;
		// values past it are read straight into their own slices.
		b.in = bufio.NewReaderSize(nc, 16<<10)
	} else {
		b.in.Reset(nc)
	}
	line := 0 // the first read of the get line being read
	for i, r := range batch {
		if !r.done && r.endsLine {
			if err := readGets(b.in, batch[line:i+1]); err != nil {
				return err
			}
			line = i + 1
		}
	}
	for _, r := range batch {
		if r.done {
			continue
		}
		if r.incrKey != "" {
			if err := readIncr(b.in, r); err != nil {
				return err
			}
		}
		r.done = true
	}
	if b.in.Buffered() > 0 {
		return fmt.Errorf("%w: %d bytes nobody asked for", errProtocol, b.in.Buffered())
	}
	return nil
}

// getThenIncrement is GetAndIncrement in two round trips, for keys kept
// on two nodes: the counter goes up only for a value that exists.
//
// A counter copy that had to be created shows that its node lost what it
// held (a restart): the value read is written back there too (RepairTTL),
// so a second node failing later loses nothing. Get repairs only the copy
// it reads first. gk and ik are the full keys of getKey and incrKey.
func (s *Storage) getThenIncrement(gk, getKey, ik, incrKey string) ([]byte, uint64, bool, error) {
	val, err := s.Get(getKey)
	if err != nil || val == nil {
		return nil, 0, false, err
	}
	count, lost, err := s.increment(ik, incrKey, s.repairTTL) // raise writes this expiry: 0 would make a raised copy never expire
	if err != nil {
		return nil, 0, false, err
	}
	if s.repairTTL > 0 {
		item := &memcache.Item{Key: gk, Value: val, Expiration: expiry(s.repairTTL, time.Now())}
		for _, n := range lost {
			if slices.Contains(s.owners(getKey), n) { // the keys share their nodes (Config.Place)
				_ = s.on(n, func(c *memcache.Client) error { return c.Add(item) })
			}
		}
	}
	return val, count, true, nil
}

// errProtocol is an answer memcached should not have given: the
// connection's stream can no longer be trusted, the node can.
var errProtocol = errors.New("unexpected answer from memcached")

var (
	crlf        = []byte("\r\n")
	end         = []byte("END\r\n")
	notFound    = []byte("NOT_FOUND\r\n")
	valueLine   = []byte("VALUE ")
	clientError = []byte("CLIENT_ERROR ")
	serverError = []byte("SERVER_ERROR ")
)

// errAnswer is memcached refusing one command (e.g. incr of a value that
// is not a number); the stream stays in step.
var errAnswer = errors.New("memcached refused")

// readIncr reads the answer to r's incr.
func readIncr(in *bufio.Reader, r *read) error {
	line, err := in.ReadSlice('\n')
	switch {
	case err != nil:
		return err
	case bytes.Equal(line, notFound):
		return nil
	case bytes.HasPrefix(line, clientError), bytes.HasPrefix(line, serverError):
		r.val, r.err = nil, fmt.Errorf("%w: incr: %q", errAnswer, bytes.TrimSuffix(line, crlf))
		return nil
	}
	count, rest, ok := parseUint(line, 1<<64-1)
	if !ok || !bytes.Equal(rest, crlf) {
		return fmt.Errorf("%w: incr answered %.300q", errProtocol, line)
	}
	r.count, r.counted = count, true
	return nil
}

// readGets reads the answer to one get line of rs's keys: for each key in
// order, its "VALUE <key> <flags> <bytes>\r\n", the data and "\r\n", or
// nothing when it is missing; then END. A declared size is checked against
// MaxItemSize before the value is allocated; a line that is neither the
// next key's value nor END where it is due ends the exchange.
func readGets(in *bufio.Reader, rs []*read) error {
	line, err := in.ReadSlice('\n')
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.done {
			continue
		}
		size, ok := valueSize(line, r.getKey)
		if !ok {
			continue // a miss, or garbage: END is checked below
		}
		val := make([]byte, size)
		if _, err := io.ReadFull(in, val); err != nil {
			return err
		}
		tail, err := in.Peek(len(crlf))
		if err != nil {
			return err
		}
		if !bytes.Equal(tail, crlf) {
			return fmt.Errorf("%w: %q after a %d-byte value", errProtocol, tail, size)
		}
		_, _ = in.Discard(len(crlf))
		r.val = val
		if line, err = in.ReadSlice('\n'); err != nil {
			return err
		}
	}
	if !bytes.Equal(line, end) {
		return fmt.Errorf("%w: get answered %.300q", errProtocol, line)
	}
	return nil
}

// valueSize checks that line is exactly "VALUE <key> <flags> <bytes>\r\n"
// with flags a 32-bit number and bytes at most MaxItemSize, and returns
// bytes.
func valueSize(line []byte, key string) (int, bool) {
	rest, ok := bytes.CutPrefix(line, valueLine)
	if !ok {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(key)); !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, false
	}
	if _, rest, ok = parseUint(rest[1:], 1<<32-1); !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, false
	}
	size, rest, ok := parseUint(rest[1:], MaxItemSize)
	if !ok || !bytes.Equal(rest, crlf) {
		return 0, false
	}
	return int(size), true
}

// parseUint reads the decimal number at the start of b, at most max
// (and 20 digits), and returns it with the rest of b.
func parseUint(b []byte, max uint64) (n uint64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && i < 20 && '0' <= b[i] && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if n > (max-d)/10 {
			return 0, nil, false
		}
		n = n*10 + d
	}
	return n, b[i:], i > 0
}
