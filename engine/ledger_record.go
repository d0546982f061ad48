package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/skuwatch/skuwatch/sources"
)

// A ledger record the intake stage writes is its stamp followed by the
// validated event in sources' binary encoding:
//
//	0x02 · intake instance id (8 bytes) · low watermark (varint, unix ns) · sources.AppendBinary(event)
//
// The stamp is part of the value rather than Kafka headers: headers cost the
// reader four allocations a record and made up half of the record's bytes.
// Another producer may write canonical JSON instead (first byte '{'), which
// carries no stamp.
const ledgerRecordFormat byte = 0x02

// intakeID names one intake stage instance in the stamps it writes.
type intakeID [8]byte

// stamp is what an intake says about the event time of its inputs when it
// writes a ledger record; a record without one (JSON from another producer)
// has ok false.
type stamp struct {
	intake    intakeID
	watermark int64
	ok        bool
}

// appendLedgerRecord appends the ledger record of ev, stamped by intake with
// its low watermark.
func appendLedgerRecord(dst []byte, intake intakeID, watermark int64, ev *sources.Event) []byte {
	dst = append(dst, ledgerRecordFormat)
	dst = append(dst, intake[:]...)
	dst = binary.AppendVarint(dst, watermark)
	return sources.AppendBinary(dst, ev)
}

// splitLedgerRecord returns the stamp of a ledger record the intake stage
// wrote and the event bytes after it; anything else is returned whole,
// unstamped.
func splitLedgerRecord(raw []byte) (stamp, []byte, error) {
	if len(raw) == 0 || raw[0] != ledgerRecordFormat {
		return stamp{}, raw, nil
	}
	if len(raw) < 1+len(intakeID{}) {
		return stamp{}, nil, fmt.Errorf("%w: ledger record of %d bytes has no stamp", sources.ErrBinary, len(raw))
	}
	st := stamp{ok: true}
	copy(st.intake[:], raw[1:])
	wm, n := binary.Varint(raw[1+len(st.intake):])
	if n <= 0 {
		return stamp{}, nil, fmt.Errorf("%w: ledger record with a bad watermark", sources.ErrBinary)
	}
	st.watermark = wm
	return st, raw[1+len(st.intake)+n:], nil
}
