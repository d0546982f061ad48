// Package sources turns bytes from inventory systems into canonical events.
//
// The canonical event is the contract of DESIGN.md: one JSON object per Kafka
// message or per line of a .jsonl file. Decode checks syntax and field types;
// the engine's intake checks the semantics (mandatory fields, ranges, skew).
package sources
