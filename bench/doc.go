// Package bench holds skuwatch's benchmarks: rule evaluation per rule, decode
// and validation, and replay throughput through the whole engine at two key
// space sizes. Run them with make bench.
package bench
