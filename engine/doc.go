// Package engine validates canonical events, applies them to the
// SKU-location ledger, evaluates the rules and runs the exception lifecycle,
// writing every effect to the partition's store in one batch per poll.
package engine
