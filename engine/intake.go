package engine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

// Limits on identifiers, so one bad source cannot bloat keys.
const maxIDLen = 256

// IntakeConfig configures validation. The zero value is usable.
type IntakeConfig struct {
	// Sources lists the accepted source names in addition to pos, shopify,
	// cin7, wms and manual. The default is none.
	Sources []string
	// MaxFutureSkew rejects events whose event_time is further ahead of the
	// clock than this. 0 disables the check (replay, where the clock is the
	// events' own time). The default is 0.
	MaxFutureSkew time.Duration
}

// Intake decodes and validates raw records and fans a transfer_out out to
// its destination key. It keeps a decoder, so it is for one goroutine.
type Intake struct {
	cfg     IntakeConfig
	sources map[string]bool
	dec     sources.Decoder
}

// NewIntake builds an Intake.
func NewIntake(cfg IntakeConfig) *Intake {
	in := &Intake{cfg: cfg, sources: map[string]bool{"pos": true, "shopify": true, "cin7": true, "wms": true, "manual": true}}
	for _, s := range cfg.Sources {
		in.sources[s] = true
	}
	return in
}

// Rejection is why a record was dead-lettered.
type Rejection struct {
	Reason string
	Field  string
}

func (r *Rejection) Error() string { return r.Reason }

// Accept decodes and validates one raw record against the clock's now and
// appends the ledger records it produces to dst: the event itself and, for a
// transfer_out, the transfer_expected notice for the destination key.
func (in *Intake) Accept(dst []sources.Event, raw []byte, now time.Time) ([]sources.Event, *Rejection) {
	ev, err := in.dec.Decode(raw)
	if err != nil {
		return dst, rejection(err)
	}
	if err := in.Validate(&ev, now); err != nil {
		return dst, rejection(err)
	}
	dst = append(dst, ev)
	if ev.Type == sources.TypeTransferOut {
		dst = append(dst, ExpectedLeg(&ev))
	}
	return dst, nil
}

// acceptLedger decodes one record of the ledger topic: a stamped record of
// an event the intake stage validated (appendLedgerRecord), or canonical
// JSON from another producer, validated here (the canonical types plus the
// internal transfer_expected). The stamp is the intake's (ok false for
// JSON).
func (in *Intake) acceptLedger(raw []byte, now time.Time) (sources.Event, stamp, *Rejection) {
	st, raw, err := splitLedgerRecord(raw)
	if err != nil {
		return sources.Event{}, st, rejection(err)
	}
	if st.ok {
		ev, err := in.dec.DecodeBinary(raw)
		if err != nil {
			return ev, st, rejection(err)
		}
		return ev, st, nil
	}
	ev, rej := in.acceptLedgerJSON(raw, now)
	return ev, st, rej
}

func (in *Intake) acceptLedgerJSON(raw []byte, now time.Time) (sources.Event, *Rejection) {
	ev, err := in.dec.Decode(raw)
	if err != nil {
		return ev, rejection(err)
	}
	if ev.Type == sources.TypeTransferExpected {
		// Checked as the transfer_out it came from, with its ends swapped back.
		out := ev
		out.Type, out.Location, out.ToLocation, out.FromLocation = sources.TypeTransferOut, ev.FromLocation, ev.Location, ""
		if err := in.Validate(&out, now); err != nil {
			return ev, rejection(err)
		}
		return ev, nil
	}
	if err := in.Validate(&ev, now); err != nil {
		return ev, rejection(err)
	}
	return ev, nil
}

// LedgerKey is a ledger record's Kafka key: sku|location. It only places the
// record on a partition (murmur2, as any producer would); the processor keys
// its state by the record's own fields.
func LedgerKey(ev *sources.Event) []byte {
	k := make([]byte, 0, len(ev.SKU)+1+len(ev.Location))
	return append(append(append(k, ev.SKU...), '|'), ev.Location...)
}

// ExpectedLeg is the notice a transfer_out sends to its destination key.
func ExpectedLeg(out *sources.Event) sources.Event {
	leg := *out
	leg.Type = sources.TypeTransferExpected
	leg.Location, leg.FromLocation, leg.ToLocation = out.ToLocation, out.Location, ""
	return leg
}

func rejection(err error) *Rejection {
	var fe *sources.FieldError
	if errors.As(err, &fe) {
		return &Rejection{Reason: fe.Error(), Field: fe.Field}
	}
	return &Rejection{Reason: err.Error()}
}

// Validate checks an event against the canonical contract.
func (in *Intake) Validate(ev *sources.Event, now time.Time) error {
	for _, f := range [...]struct {
		name, v string
	}{{"event_id", ev.EventID}, {"source", ev.Source}, {"type", ev.Type}, {"sku", ev.SKU}, {"location", ev.Location}} {
		if err := checkID(f.name, f.v, true); err != nil {
			return err
		}
	}
	if !in.sources[ev.Source] {
		return &sources.FieldError{Field: "source", Reason: fmt.Sprintf("unknown source %q (configured: pos, shopify, cin7, wms, manual%s)", ev.Source, extra(in.cfg.Sources))}
	}
	if ev.EventTime.IsZero() {
		return &sources.FieldError{Field: "event_time", Reason: "is required (RFC 3339)"}
	}
	if y := ev.EventTime.Year(); y < 2000 || y > 2100 {
		return &sources.FieldError{Field: "event_time", Reason: fmt.Sprintf("year %d is outside 2000–2100", y)}
	}
	if in.cfg.MaxFutureSkew > 0 && ev.EventTime.Sub(now) > in.cfg.MaxFutureSkew {
		return &sources.FieldError{Field: "event_time", Reason: fmt.Sprintf("is %s ahead of the clock (limit %s): check the source's clock", ev.EventTime.Sub(now).Round(time.Second), in.cfg.MaxFutureSkew)}
	}
	for _, f := range [...]struct {
		name, v string
	}{{"transfer_id", ev.TransferID}, {"to_location", ev.ToLocation}, {"from_location", ev.FromLocation}, {"category", ev.Category}} {
		if err := checkID(f.name, f.v, false); err != nil {
			return err
		}
	}
	if ev.HasUnitCost && ev.UnitCost < 0 {
		return &sources.FieldError{Field: "unit_cost", Reason: "must not be negative"}
	}
	switch ev.Type {
	case sources.TypeSale, sources.TypeReturn, sources.TypeReceipt, sources.TypeTransferOut, sources.TypeTransferIn:
		if !ev.HasQty {
			return &sources.FieldError{Field: "qty", Reason: "is required for " + ev.Type}
		}
		if ev.Qty <= 0 {
			return &sources.FieldError{Field: "qty", Reason: fmt.Sprintf("must be > 0 for %s, got %g", ev.Type, ev.Qty)}
		}
	case sources.TypeAdjustment:
		if !ev.HasQty {
			return &sources.FieldError{Field: "qty", Reason: "is required for adjustment (signed)"}
		}
		if ev.Qty == 0 {
			return &sources.FieldError{Field: "qty", Reason: "adjustment of 0 changes nothing"}
		}
	case sources.TypeCount, sources.TypeSnapshot:
		if !ev.HasOnHand {
			return &sources.FieldError{Field: "on_hand", Reason: "is required for " + ev.Type}
		}
		if ev.Type == sources.TypeCount && ev.OnHand < 0 {
			return &sources.FieldError{Field: "on_hand", Reason: fmt.Sprintf("a physical count cannot be negative, got %g", ev.OnHand)}
		}
	case sources.TypeTransferExpected:
		return &sources.FieldError{Field: "type", Reason: "transfer_expected is internal; send transfer_out"}
	default:
		return &sources.FieldError{Field: "type", Reason: fmt.Sprintf("unknown type %q (sale, return, receipt, adjustment, count, snapshot, transfer_out, transfer_in)", ev.Type)}
	}
	switch ev.Type {
	case sources.TypeTransferOut:
		if ev.TransferID == "" {
			return &sources.FieldError{Field: "transfer_id", Reason: "is required for transfer_out"}
		}
		if ev.ToLocation == "" {
			return &sources.FieldError{Field: "to_location", Reason: "is required for transfer_out"}
		}
		if ev.ToLocation == ev.Location {
			return &sources.FieldError{Field: "to_location", Reason: "equals location: a transfer must move stock between locations"}
		}
	case sources.TypeTransferIn:
		if ev.TransferID == "" {
			return &sources.FieldError{Field: "transfer_id", Reason: "is required for transfer_in"}
		}
		if ev.FromLocation == "" {
			return &sources.FieldError{Field: "from_location", Reason: "is required for transfer_in"}
		}
	}
	return nil
}

func checkID(field, v string, required bool) error {
	if v == "" {
		if required {
			return &sources.FieldError{Field: field, Reason: "is required and must be non-empty"}
		}
		return nil
	}
	if len(v) > maxIDLen {
		return &sources.FieldError{Field: field, Reason: fmt.Sprintf("is %d bytes, the limit is %d", len(v), maxIDLen)}
	}
	if strings.TrimSpace(v) != v {
		return &sources.FieldError{Field: field, Reason: fmt.Sprintf("%q has leading or trailing spaces", v)}
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return &sources.FieldError{Field: field, Reason: fmt.Sprintf("%q contains a control character", v)}
		}
	}
	return nil
}

func extra(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return ", " + strings.Join(s, ", ")
}

// NewDeadLetter builds the dead-letter record of a rejected input.
func NewDeadLetter(rej *Rejection, input string, offset int64, raw []byte) state.DeadLetter {
	dl := state.DeadLetter{Reason: rej.Reason, Field: rej.Field, Input: input, Offset: offset}
	if utf8.Valid(raw) {
		dl.Raw = string(raw)
	} else {
		dl.RawBase64 = base64.StdEncoding.EncodeToString(raw)
	}
	return dl
}
