package sinks

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"

	"github.com/skuwatch/skuwatch/state"
)

// JSONL writes each row as one line of a file. Its checkpoint is the file's
// length after the last delivered row: on Open the file is cut back to it, so
// rows written but not acknowledged before a crash are not duplicated.
type JSONL struct {
	name   string
	path   string
	stream state.Stream
	sync   bool
	f      *os.File
	w      *bufio.Writer
	size   int64
}

// NewJSONL makes a JSONL sink of stream into path; name is its cursor name.
// With sync each Write is fsynced before it is acknowledged.
func NewJSONL(name, path string, stream state.Stream, sync bool) *JSONL {
	return &JSONL{name: name, path: path, stream: stream, sync: sync}
}

// Name implements Sink.
func (j *JSONL) Name() string { return j.name }

// Stream implements Sink.
func (j *JSONL) Stream() state.Stream { return j.stream }

// Open implements Sink: it truncates the file to the checkpointed length (0
// for a sink that never wrote, so a stale file from another run is replaced).
func (j *JSONL) Open(checkpoint []byte) error {
	if err := j.Close(); err != nil {
		return err
	}
	var size int64
	if len(checkpoint) == 8 {
		size = int64(binary.BigEndian.Uint64(checkpoint))
	}
	f, err := os.OpenFile(j.path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if st.Size() < size {
		f.Close()
		return fmt.Errorf("%s is %d bytes but %d were delivered to it: it was changed outside skuwatch", j.path, st.Size(), size)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Seek(size, 0); err != nil {
		f.Close()
		return err
	}
	j.f, j.w, j.size = f, bufio.NewWriterSize(f, 64<<10), size
	return nil
}

// Write implements Sink.
func (j *JSONL) Write(_ context.Context, rows []state.Row) ([]byte, error) {
	for _, r := range rows {
		j.w.Write(r.Value)
		j.w.WriteByte('\n')
		j.size += int64(len(r.Value)) + 1
	}
	if err := j.w.Flush(); err != nil {
		return nil, err
	}
	if j.sync {
		if err := j.f.Sync(); err != nil {
			return nil, err
		}
	}
	return binary.BigEndian.AppendUint64(nil, uint64(j.size)), nil
}

// Close implements Sink.
func (j *JSONL) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.w.Flush()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}
