package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// partitionReader reads one partition from its leader: a goroutine fetches
// into one of two buffers while the stage works through the other. kafka-go's
// Reader hands over every record through a channel and copies its key and
// value, which was about a fifth of the engine's CPU; here a whole fetch
// changes hands at once. The processor's ledger partitions read values only,
// into the fetch's buffer; the intake's raw partitions keep each record's key
// too (for the dead-letter topic).
//
// Failures are retried as kafka-go's Reader retries them: a broken
// connection or a moved leader reconnects to the leader after a backoff; an
// offset before the first the broker keeps (retention deleted records never
// processed) skips to the first, with an error in the log; an offset past
// the last waits for records.
type partitionReader struct {
	dialer    *kafka.Dialer
	brokers   []string
	topic     string
	partition int
	keys      bool // keep each record's key (kafka-go copies key and value)
	log       *slog.Logger

	ready  chan<- *fetch // fetched, to the stage (may be shared by readers)
	free   chan *fetch
	cancel context.CancelFunc
	done   chan struct{}
}

// fetch is the records of one fetch of one partition; their values stay
// valid until the fetch goes back to its reader (release).
type fetch struct {
	from *partitionReader
	recs []fetched
	buf  []byte
	lag  int64 // records past the last of this fetch
	used int   // records handed out of recs
}

type fetched struct {
	offset     int64
	key, value []byte
}

func (f *fetch) release() { f.from.free <- f }

const (
	fetchMaxBytes = 1 << 20
	fetchMaxWait  = 100 * time.Millisecond
)

// startPartitionReader reads topic/partition from offset next (or
// kafka.FirstOffset) on into ready until close or the end of ctx.
func startPartitionReader(ctx context.Context, dialer *kafka.Dialer, brokers []string, topic string, partition int, next int64,
	keys bool, ready chan<- *fetch, log *slog.Logger) *partitionReader {
	if dialer == nil {
		dialer = &kafka.Dialer{Timeout: 10 * time.Second}
	}
	r := &partitionReader{dialer: dialer, brokers: brokers, topic: topic, partition: partition, keys: keys, log: log,
		ready: ready, free: make(chan *fetch, 2), done: make(chan struct{})}
	for range cap(r.free) {
		f := &fetch{from: r}
		if !keys {
			f.buf = make([]byte, 0, fetchMaxBytes)
		}
		r.free <- f
	}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.run(ctx, next)
	return r
}

// close stops the reader and waits for its goroutine.
func (r *partitionReader) close() {
	r.cancel()
	<-r.done
}

// fetchQueue hands out the records of the fetches on ready, one fetch at a
// time; for one goroutine.
type fetchQueue struct {
	ready chan *fetch
	cur   *fetch
}

// take returns up to limit records of one fetch, waiting up to wait for
// one; none when wait passed, and an error only when ctx ended. The records
// stay valid until the next take.
func (q *fetchQueue) take(ctx context.Context, wait time.Duration, limit int) ([]fetched, *fetch, error) {
	if q.cur != nil && q.cur.used == len(q.cur.recs) {
		q.cur.release()
		q.cur = nil
	}
	if q.cur == nil {
		select {
		case q.cur = <-q.ready:
		default:
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, nil, ctx.Err()
			case <-t.C:
				return nil, nil, nil
			case q.cur = <-q.ready:
				t.Stop()
			}
		}
	}
	f := q.cur
	n := min(limit, len(f.recs)-f.used)
	out := f.recs[f.used : f.used+n]
	f.used += n
	return out, f, nil
}

// ledgerReader is the processor's reader of one ledger partition.
type ledgerReader struct {
	*partitionReader
	q fetchQueue
}

func newLedgerReader(ctx context.Context, dialer *kafka.Dialer, brokers []string, topic string, partition int, next int64, log *slog.Logger) *ledgerReader {
	ready := make(chan *fetch, 1)
	return &ledgerReader{partitionReader: startPartitionReader(ctx, dialer, brokers, topic, partition, next, false, ready, log),
		q: fetchQueue{ready: ready}}
}

// take returns up to limit records, waiting up to wait for the first.
func (r *ledgerReader) take(ctx context.Context, wait time.Duration, limit int) ([]fetched, error) {
	recs, _, err := r.q.take(ctx, wait, limit)
	return recs, err
}

// lag is how many records the partition holds past the last one handed out.
func (r *ledgerReader) lag() int64 {
	if r.q.cur == nil {
		return 0
	}
	return r.q.cur.lag + int64(len(r.q.cur.recs)-r.q.cur.used)
}

func (r *partitionReader) run(ctx context.Context, next int64) {
	defer close(r.done)
	var conn *kafka.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	fails := 0
	failed := func(what string, err error) {
		fails++
		r.log.Warn("fetch failed; reconnecting", "topic", r.topic, "partition", r.partition, "offset", next, "what", what, "err", err)
		if conn != nil {
			conn.Close()
			conn = nil
		}
	}
	for ctx.Err() == nil {
		if fails > 0 && !sleepCtx(ctx, min(100*time.Millisecond<<min(fails-1, 4), time.Second)) {
			return
		}
		if conn == nil {
			c, at, err := r.connect(ctx, next)
			if err != nil {
				if ctx.Err() == nil {
					failed("connect to the leader", err)
				}
				continue
			}
			conn, next = c, at
		}
		var f *fetch
		select {
		case <-ctx.Done():
			return
		case f = <-r.free:
		}
		err := r.read(ctx, conn, next, f)
		if len(f.recs) > 0 {
			next = f.recs[len(f.recs)-1].offset + 1
		}
		switch {
		case ctx.Err() != nil:
			return
		case err == nil || errors.Is(err, io.EOF) || errors.Is(err, kafka.RequestTimedOut):
			fails = 0
		case errors.Is(err, io.ErrShortBuffer):
			// The next record does not fit: the next fetch starts at it,
			// with room for it if it was the first.
			if len(f.recs) == 0 {
				f.buf = make([]byte, 0, 2*cap(f.buf))
			}
			fails = 0
		case errors.Is(err, kafka.OffsetOutOfRange):
			conn.Close() // not reusable after the error; the next one seeks to next
			conn = nil
			first, last, oerr := r.offsets(ctx)
			switch {
			case oerr != nil:
				failed("read the partition's offsets", oerr)
			case next < first:
				r.log.Error("records were deleted before they were processed (retention); skipping them",
					"topic", r.topic, "partition", r.partition, "from", next, "to", first, "records", first-next)
				next, fails = first, 0
			case next < last:
				fails = 0 // records came meanwhile
			default:
				fails = 1 // past the end: wait for records
			}
		default:
			failed("read", err)
		}
		if len(f.recs) == 0 {
			r.free <- f
			continue
		}
		select {
		case r.ready <- f:
		case <-ctx.Done():
			return
		}
	}
}

// read fetches the records from offset from on into f.
func (r *partitionReader) read(ctx context.Context, conn *kafka.Conn, from int64, f *fetch) error {
	f.recs, f.buf, f.used = f.recs[:0], f.buf[:0], 0
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) }) // a stop ends the fetch at once
	defer stop()
	b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: fetchMaxWait})
	var err error
	for r.keys {
		var m kafka.Message
		if m, err = b.ReadMessage(); err != nil { // skips what precedes from itself
			break
		}
		f.recs = append(f.recs, fetched{offset: m.Offset, key: m.Key, value: m.Value})
	}
	for !r.keys {
		start := len(f.buf)
		var n int
		if n, err = b.Read(f.buf[start:cap(f.buf)]); err != nil {
			break
		}
		offset := b.Offset() - 1
		if offset < from {
			continue // a record batch may begin before the offset asked for
		}
		f.buf = f.buf[:start+n]
		f.recs = append(f.recs, fetched{offset: offset, value: f.buf[start : start+n : start+n]})
	}
	f.lag = max(b.HighWaterMark()-b.Offset(), 0)
	if cerr := b.Close(); errors.Is(err, io.EOF) && cerr != nil && !errors.Is(cerr, io.EOF) {
		err = cerr
	}
	return err
}

// connect dials the partition's leader and seeks to next: an absolute
// offset as it is (the fetch reports one out of range), the first or last
// offset looked up.
func (r *partitionReader) connect(ctx context.Context, next int64) (*kafka.Conn, int64, error) {
	var last error
	for _, b := range r.brokers {
		conn, err := r.dialer.DialLeader(ctx, "tcp", b, r.topic, r.partition)
		if err != nil {
			last = err
			continue
		}
		offset, whence := next, kafka.SeekAbsolute|kafka.SeekDontCheck
		switch next {
		case kafka.FirstOffset:
			offset, whence = 0, kafka.SeekStart
		case kafka.LastOffset:
			offset, whence = 0, kafka.SeekEnd
		}
		at, err := conn.Seek(offset, whence)
		if err != nil {
			conn.Close()
			last = err
			continue
		}
		return conn, at, nil
	}
	return nil, next, last
}

// offsets are the partition's first and last (next to be written) offsets.
func (r *partitionReader) offsets(ctx context.Context) (first, last int64, err error) {
	conn, _, err := r.connect(ctx, kafka.FirstOffset)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	return conn.ReadOffsets()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
