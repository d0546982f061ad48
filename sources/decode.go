package sources

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// ErrSyntax marks input that is not a JSON object at all.
var ErrSyntax = errors.New("sources: not a JSON object")

// FieldError says which field of an event is wrong and why. Its message is
// meant for the person reading the dead-letter output.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Reason) }

// Decoder decodes canonical event JSON. It reuses its parser between calls,
// so a Decoder is for one goroutine at a time; make one per goroutine.
type Decoder struct {
	p      fastjson.Parser
	intern map[string]string // low-cardinality values: source, type, location, category
}

// maxInterned bounds the intern table; it is cleared when full.
const maxInterned = 1 << 14

func (d *Decoder) internStr(key string, v *fastjson.Value, dst *string) error {
	if v.Type() != fastjson.TypeString {
		return str(key, v, dst)
	}
	b, _ := v.StringBytes()
	*dst = interned(d, b)
	return nil
}

// interned returns the table's copy of s, adding one: the copy never shares
// memory with the input (a decoded record must not stay alive through it).
func interned[T string | []byte](d *Decoder, s T) string {
	if v, ok := d.intern[string(s)]; ok {
		return v
	}
	if d.intern == nil || len(d.intern) >= maxInterned {
		d.intern = make(map[string]string, 256)
	}
	v := strings.Clone(string(s))
	d.intern[v] = v
	return v
}

// Decode parses one canonical event. Fields the contract does not name are
// ignored, so sources may carry extra attributes without being rejected.
// A field of the wrong JSON type is an error; a missing field is left zero
// for the intake to judge.
func (d *Decoder) Decode(b []byte) (Event, error) {
	var ev Event
	if !utf8.Valid(b) {
		return ev, fmt.Errorf("%w: input is not valid UTF-8", ErrSyntax)
	}
	v, err := d.p.ParseBytes(b)
	if err != nil {
		return ev, fmt.Errorf("%w: %s", ErrSyntax, err.Error())
	}
	obj, err := v.Object()
	if err != nil {
		return ev, fmt.Errorf("%w: top level is a JSON %s", ErrSyntax, v.Type())
	}
	var ferr error
	obj.Visit(func(key []byte, fv *fastjson.Value) {
		if ferr != nil {
			return
		}
		ferr = d.decodeField(&ev, key, fv)
	})
	return ev, ferr
}

func (d *Decoder) decodeField(ev *Event, kb []byte, v *fastjson.Value) error {
	switch key := string(kb); key {
	case "event_id":
		return str(key, v, &ev.EventID)
	case "source":
		return d.internStr(key, v, &ev.Source)
	case "type":
		return d.internStr(key, v, &ev.Type)
	case "sku":
		return str(key, v, &ev.SKU)
	case "location":
		return d.internStr(key, v, &ev.Location)
	case "transfer_id":
		return str(key, v, &ev.TransferID)
	case "to_location":
		return d.internStr(key, v, &ev.ToLocation)
	case "from_location":
		return d.internStr(key, v, &ev.FromLocation)
	case "category":
		return d.internStr(key, v, &ev.Category)
	case "qty":
		return num(key, v, &ev.Qty, &ev.HasQty)
	case "on_hand":
		return num(key, v, &ev.OnHand, &ev.HasOnHand)
	case "unit_cost":
		return num(key, v, &ev.UnitCost, &ev.HasUnitCost)
	case "event_time":
		var s string
		if err := str(key, v, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return &FieldError{key, fmt.Sprintf("%q is not an RFC 3339 time (like 2026-12-04T09:30:00Z)", s)}
		}
		ev.EventTime = t.UTC()
	}
	return nil
}

func str(key string, v *fastjson.Value, dst *string) error {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		*dst = string(b)
		return nil
	case fastjson.TypeNull:
		return nil
	}
	return &FieldError{key, fmt.Sprintf("must be a string, got a JSON %s", v.Type())}
}

func num(key string, v *fastjson.Value, dst *float64, has *bool) error {
	switch v.Type() {
	case fastjson.TypeNumber:
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return &FieldError{key, fmt.Sprintf("%s is not a finite number", v.String())}
		}
		*dst, *has = f, true
		return nil
	case fastjson.TypeString:
		// Some exporters quote numbers; accept a quoted finite decimal.
		b, _ := v.StringBytes()
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return &FieldError{key, fmt.Sprintf("must be a number, got the string %q", b)}
		}
		*dst, *has = f, true
		return nil
	case fastjson.TypeNull:
		return nil
	}
	return &FieldError{key, fmt.Sprintf("must be a number, got a JSON %s", v.Type())}
}
