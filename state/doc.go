// Package state keeps one partition's SKU-location ledger, timers, exceptions,
// applied event ids, outbox and offsets in a Pebble database.
//
// The engine owns the write path (one Batch per processing batch); sinks read
// the outbox and advance their own cursors. Key encodings live in keys.go.
package state
