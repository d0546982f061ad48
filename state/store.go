package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Stream names one outbox stream; each sink drains one stream.
type Stream byte

// Outbox streams.
const (
	StreamExceptions Stream = 'e' // Exception JSON, one row per version
	StreamDeadLetter Stream = 'q' // DeadLetter JSON
	StreamStock      Stream = 's' // StockChange JSON (KPI streams: only when asked for)
	StreamCounts     Stream = 'c' // CountRecord JSON, one row per version
)

// Streams are all outbox streams.
var Streams = []Stream{StreamExceptions, StreamDeadLetter, StreamStock, StreamCounts}

func (s Stream) String() string {
	switch s {
	case StreamExceptions:
		return "exceptions"
	case StreamDeadLetter:
		return "deadletter"
	case StreamStock:
		return "stock"
	case StreamCounts:
		return "counts"
	}
	return fmt.Sprintf("stream(%d)", byte(s))
}

// ErrClosed is returned by a Store used after Close.
var ErrClosed = errors.New("state: closed")

// Options configure Open. The zero value is usable.
type Options struct {
	// CacheBytes is Pebble's block cache. The default is 256 MiB.
	CacheBytes int64
	// InMemory keeps the database in memory (rule-file tests); dir is then
	// only a name. The default is false.
	InMemory bool
	// Logger receives Pebble's messages (info at debug level). The default is
	// slog.Default().
	Logger *slog.Logger
}

// Store is one partition's Pebble database. It is safe for concurrent use by
// one writer (the engine's processor, through Batch) and any number of readers
// (sinks reading the outbox and writing their own cursors).
type Store struct {
	db *pebble.DB
}

// Open opens or creates the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.CacheBytes <= 0 {
		o.CacheBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cache := pebble.NewCache(o.CacheBytes)
	defer cache.Unref()
	// A large memtable absorbs the rewrites of hot ledger rows (each batch
	// rewrites every row it touched) before they reach an sstable: flushes
	// and compactions were most of the write path's cost with the 4 MiB
	// default.
	opts := &pebble.Options{Cache: cache, Logger: pebbleLogger{o.Logger}, MemTableSize: 32 << 20,
		MemTableStopWritesThreshold: 4, L0CompactionThreshold: 4, L0StopWritesThreshold: 24}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if o.InMemory {
		opts.FS = vfs.NewMem()
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	st := &Store{db: db}
	if err := st.migrateApplied(); err != nil {
		db.Close()
		return nil, err
	}
	return st, nil
}

// migrateApplied moves applied ids of the day-less layout ('d') into day
// buckets ('a'), once.
func (s *Store) migrateApplied() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagAppliedV1}, UpperBound: []byte{tagAppliedV1 + 1}})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	n := 0
	var k []byte
	for it.First(); it.Valid(); it.Next() {
		v := it.Value()
		if len(v) != 8 {
			continue
		}
		k = appliedKey(k[:0], int64(binary.BigEndian.Uint64(v)), it.Key()[1:])
		b.Set(k, v, nil)
		if n++; n%10_000 == 0 {
			if err := b.Commit(pebble.NoSync); err != nil {
				it.Close()
				return fmt.Errorf("state: move applied ids: %w", err)
			}
			b = s.db.NewBatch()
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: move applied ids: %w", err)
	}
	if n == 0 {
		return b.Close()
	}
	b.DeleteRange([]byte{tagAppliedV1}, []byte{tagAppliedV1 + 1}, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("state: move applied ids: %w", err)
	}
	return nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if s.db == nil {
		return ErrClosed
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// Entry reads the ledger row of stateKey. ok is false when the key has never
// been written.
func (s *Store) Entry(stateKey string) (e *Entry, ok bool, err error) {
	v, closer, err := s.db.Get(ledgerKey(nil, stateKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: read entry: %w", err)
	}
	defer closer.Close()
	e = new(Entry)
	if err := e.UnmarshalBinary(v); err != nil {
		return nil, false, fmt.Errorf("state: entry %q: %w", stateKey, err)
	}
	return e, true, nil
}

// Applied reports whether the event id (dedupKey, as AppendDedupKey makes
// it, with its event time, unix ns) was marked applied by a committed batch
// and not pruned since.
func (s *Store) Applied(eventTime int64, dedupKey []byte) (bool, error) {
	_, closer, err := s.db.Get(appliedKey(nil, eventTime, dedupKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state: read applied id: %w", err)
	}
	closer.Close()
	return true, nil
}

// EachApplied calls fn with the dedup key (AppendDedupKey's) of every
// applied event id, in day then key order; the engine uses it to rebuild its
// in-memory filter.
func (s *Store) EachApplied(fn func(dedupKey []byte)) error {
	return s.eachKey(tagApplied, func(k []byte) { fn(k[4:]) })
}

// PruneApplied forgets the applied ids of events before UTC day beforeDay
// (AppliedDay): a redelivery of one of them is applied again. It reports
// whether there was any.
func (s *Store) PruneApplied(beforeDay uint32) (bool, error) {
	hi := binary.BigEndian.AppendUint32([]byte{tagApplied}, beforeDay)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagApplied}, UpperBound: hi, KeyTypes: pebble.IterKeyTypePointsOnly})
	if err != nil {
		return false, err
	}
	any := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil || !any {
		return false, err
	}
	if err := s.db.DeleteRange([]byte{tagApplied}, hi, pebble.NoSync); err != nil {
		return false, fmt.Errorf("state: prune applied ids: %w", err)
	}
	return true, nil
}

// EachEntryKey calls fn with the state key of every ledger row.
func (s *Store) EachEntryKey(fn func(stateKey []byte)) error { return s.eachKey(tagLedger, fn) }

// eachKey calls fn with every key of one table, tag removed. The slice is
// only valid during the call.
func (s *Store) eachKey(tag byte, fn func([]byte)) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tag}, UpperBound: []byte{tag + 1}, KeyTypes: pebble.IterKeyTypePointsOnly})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		fn(it.Key()[1:])
	}
	return errors.Join(it.Error(), it.Close())
}

// Meta reads a meta value written by Batch.SetMeta.
func (s *Store) Meta(name string) ([]byte, bool, error) {
	v, closer, err := s.db.Get(metaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: read meta %s: %w", name, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// MetaUint reads a meta value written by Batch.SetMetaUint; 0 when absent.
func (s *Store) MetaUint(name string) (uint64, error) {
	v, ok, err := s.Meta(name)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("state: meta %s: %d bytes, want 8", name, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Timer is one due wake-up from the timer index.
type Timer struct {
	Due      int64
	StateKey string
}

// DueTimers returns up to limit committed timers that sort after the timer
// after (the zero Timer: from the start) and are due at or before upTo, in
// (due, key) order.
func (s *Store) DueTimers(after Timer, upTo int64, limit int) ([]Timer, error) {
	lower := []byte{tagTimer}
	if after != (Timer{}) {
		lower = append(timerKey(nil, after.Due, after.StateKey), 0)
	}
	upper := timerKey(nil, upTo, "\xff")
	if upTo == math.MaxInt64 {
		upper = []byte{tagTimer + 1}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	var out []Timer
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		due, key, ok := parseTimerKey(it.Key())
		if ok {
			out = append(out, Timer{due, key})
		}
	}
	return out, errors.Join(it.Error(), it.Close())
}

// NextTimer returns the earliest committed timer's due time.
func (s *Store) NextTimer() (due int64, ok bool, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagTimer}, UpperBound: []byte{tagTimer + 1}})
	if err != nil {
		return 0, false, err
	}
	if it.First() {
		due, _, ok = parseTimerKey(it.Key())
	}
	return due, ok, errors.Join(it.Error(), it.Close())
}

// Row is one outbox row.
type Row struct {
	Seq   uint64
	Value []byte
}

// ReadOutbox returns up to limit committed rows of stream with seq > after.
func (s *Store) ReadOutbox(stream Stream, after uint64, limit int) ([]Row, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: outboxKey(nil, stream, after+1), UpperBound: outboxKey(nil, stream+1, 0)})
	if err != nil {
		return nil, err
	}
	var rows []Row
	for it.First(); it.Valid() && len(rows) < limit; it.Next() {
		k := it.Key()
		rows = append(rows, Row{Seq: binary.BigEndian.Uint64(k[2:]), Value: append([]byte(nil), it.Value()...)})
	}
	return rows, errors.Join(it.Error(), it.Close())
}

// OutboxHead returns the last sequence number committed to stream (0 if none).
func (s *Store) OutboxHead(stream Stream) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: outboxKey(nil, stream, 0), UpperBound: outboxKey(nil, stream+1, 0)})
	if err != nil {
		return 0, err
	}
	var seq uint64
	if it.Last() {
		seq = binary.BigEndian.Uint64(it.Key()[2:])
	}
	return seq, errors.Join(it.Error(), it.Close())
}

// Cursor returns a sink's position in its stream and the checkpoint it stored
// with it (nil if none).
func (s *Store) Cursor(sink string) (seq uint64, checkpoint []byte, err error) {
	v, closer, err := s.db.Get(cursorKey(sink))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("state: read cursor %s: %w", sink, err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("state: cursor %s: %d bytes", sink, len(v))
	}
	return binary.BigEndian.Uint64(v), append([]byte(nil), v[8:]...), nil
}

// SetCursor durably records a sink's position and checkpoint.
func (s *Store) SetCursor(sink string, seq uint64, checkpoint []byte) error {
	if err := s.db.Set(cursorKey(sink), cursorValue(seq, checkpoint), pebble.Sync); err != nil {
		return fmt.Errorf("state: write cursor %s: %w", sink, err)
	}
	return nil
}

func cursorValue(seq uint64, checkpoint []byte) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(checkpoint)), seq)
	return append(v, checkpoint...)
}

// PruneOutbox deletes the rows of stream with seq ≤ upTo; call it with the
// lowest cursor of the stream's sinks.
func (s *Store) PruneOutbox(stream Stream, upTo uint64) error {
	return s.db.DeleteRange(outboxKey(nil, stream, 0), outboxKey(nil, stream, upTo+1), pebble.NoSync)
}

// Batch collects one processing batch's writes; Commit applies them
// atomically. A Batch is for the single writer goroutine.
type Batch struct {
	b   *pebble.Batch
	key []byte // scratch for the keys being written
}

// NewBatch starts a batch.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch()} }

// Len is the number of bytes the batch holds so far.
func (b *Batch) Len() int { return b.b.Len() }

// PutEntry writes the ledger row of stateKey.
func (b *Batch) PutEntry(stateKey string, e *Entry, scratch []byte) ([]byte, error) {
	v, err := e.appendBinary(scratch[:0])
	if err != nil {
		return scratch, err
	}
	b.key = ledgerKey(b.key[:0], stateKey)
	return v, b.b.Set(b.key, v, nil)
}

// MarkApplied records an applied event id (dedupKey, as AppendDedupKey
// makes it) with its event time.
func (b *Batch) MarkApplied(dedupKey []byte, eventTime int64) error {
	b.key = appliedKey(b.key[:0], eventTime, dedupKey)
	n := len(b.key)
	b.key = binary.BigEndian.AppendUint64(b.key, uint64(eventTime)) // the value, after the key
	return b.b.Set(b.key[:n], b.key[n:], nil)
}

// SetTimer adds a wake timer index row.
func (b *Batch) SetTimer(due int64, stateKey string) error {
	b.key = timerKey(b.key[:0], due, stateKey)
	return b.b.Set(b.key, nil, nil)
}

// DeleteTimer removes a wake timer index row.
func (b *Batch) DeleteTimer(due int64, stateKey string) error {
	b.key = timerKey(b.key[:0], due, stateKey)
	return b.b.Delete(b.key, nil)
}

// PutException stores the latest version of an exception.
func (b *Batch) PutException(id string, value []byte) error {
	return b.b.Set(exceptionKey(id), value, nil)
}

// Append adds an outbox row.
func (b *Batch) Append(stream Stream, seq uint64, value []byte) error {
	b.key = outboxKey(b.key[:0], stream, seq)
	return b.b.Set(b.key, value, nil)
}

// SetMeta writes a meta value.
func (b *Batch) SetMeta(name string, value []byte) error { return b.b.Set(metaKey(name), value, nil) }

// SetCursor writes a sink's cursor in the batch (so that it is in the
// batch's Repr too), as Store.SetCursor does on its own.
func (b *Batch) SetCursor(sink string, seq uint64, checkpoint []byte) error {
	return b.b.Set(cursorKey(sink), cursorValue(seq, checkpoint), nil)
}

// SetMetaUint writes a meta value as 8 big-endian bytes.
func (b *Batch) SetMetaUint(name string, v uint64) error {
	return b.SetMeta(name, binary.BigEndian.AppendUint64(nil, v))
}

// Repr is the batch's encoding: what ApplyRepr applies to another store of
// the same partition (a changelog record). Valid until Commit or Discard.
func (b *Batch) Repr() []byte { return b.b.Repr() }

// ApplyRepr applies a batch encoding taken from Batch.Repr, synced.
func (s *Store) ApplyRepr(repr []byte) error {
	b := s.db.NewBatch()
	if err := b.SetRepr(append([]byte(nil), repr...)); err != nil {
		return fmt.Errorf("state: changelog record: %w", err)
	}
	if err := s.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("state: apply changelog record: %w", err)
	}
	return b.Close()
}

// Snapshot calls fn with the whole store but its sink cursors (which are
// the instance's own) as a sequence of batch encodings (for ApplyRepr) of at
// most about maxBytes each, read from one consistent view: with Clear, a
// changelog snapshot. The encodings are only valid during the call.
func (s *Store) Snapshot(maxBytes int, fn func(repr []byte) error) error {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(&pebble.IterOptions{KeyTypes: pebble.IterKeyTypePointsOnly})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	flush := func() error {
		if b.Empty() {
			return nil
		}
		err := fn(b.Repr())
		b.Reset()
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] == tagCursor {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return err
		}
		b.Set(it.Key(), v, nil)
		if b.Len() >= maxBytes {
			if err := flush(); err != nil {
				it.Close()
				return err
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("state: snapshot: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	return b.Close()
}

// Clear deletes everything but the sink cursors, synced: before a snapshot
// is applied. The cursors stay because they are this instance's (a file
// sink's checkpoint says how much of its file was delivered), and outbox
// sequence numbers go on from the snapshot's.
func (s *Store) Clear() error {
	b := s.db.NewBatch()
	b.DeleteRange([]byte{0}, []byte{tagCursor}, nil)
	b.DeleteRange([]byte{tagCursor + 1}, []byte{0xff}, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("state: clear: %w", err)
	}
	return nil
}

// Commit applies the batch; with sync it is on stable storage on return.
func (b *Batch) Commit(sync bool) error {
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	if err := b.b.Commit(opt); err != nil {
		return fmt.Errorf("state: commit batch: %w", err)
	}
	return b.b.Close()
}

// Discard drops the batch without applying it.
func (b *Batch) Discard() { _ = b.b.Close() }

// pebbleLogger sends Pebble's messages to slog; Pebble's info chatter
// ("Found 0 WALs") goes to debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any)  { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
