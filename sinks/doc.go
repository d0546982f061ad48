// Package sinks delivers outbox rows to the world. Each sink drains one
// outbox stream with its own cursor, retries and backoff, so a slow or broken
// sink delays only itself.
package sinks
