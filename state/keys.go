package state

import "encoding/binary"

// Key layout. Every key starts with a one-byte table tag, so each table is a
// contiguous range and a prefix scan never crosses tables. Integers are
// big-endian so that byte order is numeric order. Strings may not contain
// 0x00 (intake rejects it), so 0x00 is a safe separator.
//
//	'l' sku 0x00 location                      → Entry (entry.go), the ledger row
//	'a' day(4) source 0x00 event_id 0x00 kind(1) → event time, 8 B unix ns: event applied
//	                                             once; day is the UTC day of its event time
//	                                             (a redelivery has the same), so old days
//	                                             are dropped as one range
//	'd' source 0x00 event_id 0x00 kind(1)      → the same without the day (until format 6);
//	                                             Open moves them to 'a'
//	't' due(8, unix ns) sku 0x00 location      → empty: wake timer index; valid only
//	                                             while Entry.WakeAt == due (lazy delete)
//	'x' exception_id                           → Exception JSON, latest version
//	'o' stream(1) seq(8)                       → outbox row: one change for the sinks
//	'c' sink name                              → cursor: seq(8) then the sink's checkpoint
//	'm' name                                   → meta: input offset, outbox sequences, input id
const (
	tagLedger    = 'l'
	tagApplied   = 'a'
	tagAppliedV1 = 'd'
	tagTimer     = 't'
	tagException = 'x'
	tagOutbox    = 'o'
	tagCursor    = 'c'
	tagMeta      = 'm'
)

// The key builders append to dst: a batch builds its keys in one scratch
// buffer (Pebble copies them), reads pass nil.

func ledgerKey(dst []byte, stateKey string) []byte {
	return append(append(dst, tagLedger), stateKey...)
}

// appliedKey is the applied-id row of dedupKey (AppendDedupKey) in the day
// bucket of eventTime.
func appliedKey[K string | []byte](dst []byte, eventTime int64, dedupKey K) []byte {
	dst = binary.BigEndian.AppendUint32(append(dst, tagApplied), AppliedDay(eventTime))
	return append(dst, dedupKey...)
}

// AppliedDay is the UTC day number (since 1970) of an event time, the
// bucket of its applied id; 0 for times before 1970.
func AppliedDay(eventTime int64) uint32 {
	if eventTime < 0 {
		return 0
	}
	return uint32(eventTime / (24 * 3600 * 1e9))
}

// AppendDedupKey appends an applied-id key without its table tag and day —
// what Store.EachApplied reports — to dst.
func AppendDedupKey(dst []byte, source, eventID string, kind byte) []byte {
	dst = append(dst, source...)
	dst = append(dst, 0)
	dst = append(dst, eventID...)
	return append(dst, 0, kind)
}

func timerKey(dst []byte, due int64, stateKey string) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, tagTimer), uint64(due))
	return append(dst, stateKey...)
}

func parseTimerKey(k []byte) (due int64, stateKey string, ok bool) {
	if len(k) < 9 || k[0] != tagTimer {
		return 0, "", false
	}
	return int64(binary.BigEndian.Uint64(k[1:9])), string(k[9:]), true
}

func exceptionKey(id string) []byte { return append([]byte{tagException}, id...) }

func outboxKey(dst []byte, stream Stream, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagOutbox, byte(stream)), seq)
}

func cursorKey(sink string) []byte { return append([]byte{tagCursor}, sink...) }
func metaKey(name string) []byte   { return append([]byte{tagMeta}, name...) }
