package sources

import (
	"strconv"
	"time"
)

// AppendJSON appends ev as one canonical JSON object (no newline) to dst.
// Decode(AppendJSON(nil, ev)) returns ev again.
func AppendJSON(dst []byte, ev *Event) []byte {
	dst = append(dst, '{')
	dst = field(dst, "event_id", ev.EventID, true)
	dst = field(dst, "source", ev.Source, false)
	dst = field(dst, "type", ev.Type, false)
	dst = field(dst, "sku", ev.SKU, false)
	dst = field(dst, "location", ev.Location, false)
	if ev.HasQty {
		dst = numField(dst, "qty", ev.Qty)
	}
	if ev.HasOnHand {
		dst = numField(dst, "on_hand", ev.OnHand)
	}
	if ev.TransferID != "" {
		dst = field(dst, "transfer_id", ev.TransferID, false)
	}
	if ev.ToLocation != "" {
		dst = field(dst, "to_location", ev.ToLocation, false)
	}
	if ev.FromLocation != "" {
		dst = field(dst, "from_location", ev.FromLocation, false)
	}
	if ev.HasUnitCost {
		dst = numField(dst, "unit_cost", ev.UnitCost)
	}
	if ev.Category != "" {
		dst = field(dst, "category", ev.Category, false)
	}
	dst = append(dst, `,"event_time":"`...)
	dst = ev.EventTime.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"', '}')
	return dst
}

func field(dst []byte, name, val string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendJSONString(dst, val)
}

func numField(dst []byte, name string, v float64) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal. s must be valid UTF-8.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
