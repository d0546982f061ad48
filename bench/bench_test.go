package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sources"
)

func defaultRules(b *testing.B) *rules.Ruleset {
	rs, err := engine.LoadRulesBytes("default.yaml", rules.Default)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// BenchmarkRuleEval measures one rule's condition on a typical non-firing
// environment (the common case) and on a firing one.
func BenchmarkRuleEval(b *testing.B) {
	rs := defaultRules(b)
	th := rs.Thresholds("grocery", time.June)
	quiet := rules.Env{T: th,
		Event: rules.EventEnv{Type: "sale", Source: "pos", Qty: 1},
		State: rules.StateEnv{OnHand: 12, Baselined: true, HasCount: true, HoursSinceCount: 50, DaysSinceCount: 2,
			DaysSinceSale: 0, TodayUnits: 3, ExpectedDaily: 2.5, DailySD: 1.8, HistoryDays: 60, Counted: 14, CountLedgerBefore: 14},
		Transfer: rules.TransferEnv{OldestAgeHours: -1}}
	firing := quiet
	firing.State.OnHand, firing.State.TodayUnits, firing.State.DaysSinceCount = -4, 30, 45
	firing.State.Variance, firing.State.AbsVariance, firing.State.RelVariance = -9, 9, 0.6
	firing.Transfer = rules.TransferEnv{Matched: true, ExpectedQty: 10, ReceivedQty: 7, Diff: -3, OldestAgeHours: 80}
	for _, r := range rs.Rules {
		for _, c := range []struct {
			name string
			env  rules.Env
		}{{"quiet", quiet}, {"firing", firing}} {
			b.Run(r.ID+"/"+c.name, func(b *testing.B) {
				var ev rules.Evaluator
				b.ReportAllocs()
				for b.Loop() {
					if _, err := ev.Judge(r, &c.env, false); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/eval")
			})
		}
	}
}

// BenchmarkDecodeValidate measures intake: JSON decode and contract checks.
func BenchmarkDecodeValidate(b *testing.B) {
	line := []byte(`{"event_id":"pos-00012345","source":"pos","type":"sale","sku":"SKU-00042","location":"ST017","qty":2,"category":"grocery","event_time":"2026-06-01T10:11:12.123456Z"}`)
	in := engine.NewIntake(engine.IntakeConfig{})
	var out []sources.Event
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		var rej *engine.Rejection
		if out, rej = in.Accept(out[:0], line, time.Time{}); rej != nil {
			b.Fatal(rej)
		}
	}
}

// writeStream writes n canonical events over keys SKU-locations: every key
// opens with a count, then a mix of sales (most), receipts, counts,
// adjustments and receipts of transfers, with event time moving forward
// ~20 ms a step. It keeps each key's stock like a store would: counts find
// the ledger (one in fifty finds a real variance) and a shelf is restocked
// before it runs out (one sale in a thousand oversells), so exceptions are
// as rare as on a real chain and the benchmark measures the common path.
func writeStream(b *testing.B, path string, n, keys int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	var line []byte
	opened := make([]bool, keys)
	stock := make([]float64, keys)
	for i := 0; i < n; i++ {
		k := r.IntN(keys)
		ev := sources.Event{EventID: strconv.Itoa(i), Source: "pos", SKU: "SKU-" + strconv.Itoa(k/50), Location: "ST" + strconv.Itoa(k%50),
			Category: "grocery", EventTime: t0.Add(time.Duration(i) * 20 * time.Millisecond)}
		switch x := r.IntN(100); {
		case !opened[k] || x < 3:
			if !opened[k] {
				stock[k] = 40
			} else if r.IntN(50) == 0 {
				stock[k] -= 10 // shrink the count reveals
			}
			stock[k] = math.Max(0, stock[k])
			ev.Type, ev.Source, ev.OnHand, ev.HasOnHand, ev.UnitCost, ev.HasUnitCost = sources.TypeCount, "wms", stock[k], true, 3, true
			opened[k] = true
		case x < 5 || stock[k] < 4:
			ev.Type, ev.Source, ev.Qty, ev.HasQty = sources.TypeReceipt, "wms", 20, true
			stock[k] += 20
		case x < 7 && stock[k] > 1:
			ev.Type, ev.Source, ev.Qty, ev.HasQty = sources.TypeAdjustment, "manual", -1, true
			stock[k]--
		case x < 9:
			ev.Type, ev.Source, ev.Qty, ev.HasQty, ev.TransferID, ev.FromLocation = sources.TypeTransferIn, "wms", 5, true, "T"+strconv.Itoa(i), "WH"
			stock[k] += 5
		default:
			ev.Type, ev.Qty, ev.HasQty = sources.TypeSale, float64(1+r.IntN(2)), true
			if r.IntN(1000) == 0 {
				ev.Qty = math.Max(stock[k], 0) + 2 // an oversell: negative stock
			}
			stock[k] -= ev.Qty
		}
		line = append(sources.AppendJSON(line[:0], &ev), '\n')
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// BenchmarkReplay measures the whole replay path — decode, validate, dedup,
// Pebble-backed ledger, all default rules, lifecycle, outbox, JSONL sinks —
// with b.N events over a small and a large key space. Compare events/s of the
// two: the cost per event should not grow with the key space. The last case
// keeps only 100,000 of the 500,000 rows in memory, so most reads go to
// Pebble: the cost when the working set outgrows the cache.
func BenchmarkReplay(b *testing.B) {
	rs := defaultRules(b)
	for _, c := range []struct{ keys, cache int }{{10_000, 0}, {500_000, 0}, {500_000, 100_000}} {
		name := fmt.Sprintf("keys=%d", c.keys)
		if c.cache > 0 {
			name += fmt.Sprintf("/cache=%d", c.cache)
		}
		keys := c.keys
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			events := filepath.Join(dir, "events.jsonl")
			writeStream(b, events, b.N, keys)
			b.ResetTimer()
			sum, err := engine.Replay(context.Background(), engine.ReplayConfig{Rules: engine.NewRules(rs, nil),
				EventsPath: events, OutPath: filepath.Join(dir, "out.jsonl"), DLQPath: filepath.Join(dir, "dlq.jsonl"),
				DataDir: filepath.Join(dir, "state"), BatchLines: 5000, CacheEntries: c.cache})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if sum.Events != b.N || sum.DeadLettered != 0 {
				b.Fatalf("summary %+v for %d events", sum, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
			if hwm := peakRSS(); hwm > 0 {
				b.ReportMetric(hwm, "peak-RSS-MiB")
			}
		})
	}
}

// peakRSS is the process's peak resident set in MiB (Linux), 0 if unknown.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkNBTail measures the negative binomial tail behind demand_spike,
// computed only once the rule's cheap gates pass.
func BenchmarkNBTail(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		rules.NBTail(30, 2.5, 1.8)
	}
}
