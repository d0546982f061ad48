// Package synth generates a realistic synthetic retail chain's event stream
// with labelled anomalies of every default rule, for tests, benchmarks and
// the demo.
//
// The model keeps two books per SKU-location: the physical stock and the
// ledger skuwatch will compute from the events. They differ only where an
// anomaly is injected, and every anomaly is labelled with the time window in
// which a correct engine should report it. Demand is intermittent and
// overdispersed (Poisson with a gamma-distributed daily rate) with an
// intraday curve and a per-SKU weekly pattern; stores are replenished by
// transfers from a warehouse, the warehouse by supplier receipts, and every
// key is cycle-counted on its own schedule.
package synth

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/skuwatch/skuwatch/sources"
)

// Config sizes the chain. The zero value of a field means its default.
type Config struct {
	Stores int       // default 20
	SKUs   int       // default 100
	Days   int       // default 70
	Start  time.Time // default 2026-03-02 (a Monday), UTC
	Seed   uint64    // default 1
	// AnomalyRate is the share of store keys that get each kind of anomaly
	// (at least 3 of each). The default is 0.02.
	AnomalyRate float64
	// MalformedRate, DuplicateRate and LateRate are shares of events that
	// are written as malformed lines, redelivered, or delivered after the
	// next count. Defaults 0.001, 0.002, 0.2 (of counts).
	MalformedRate, DuplicateRate, LateRate float64
}

func (c *Config) defaults() {
	if c.Stores <= 0 {
		c.Stores = 20
	}
	if c.SKUs <= 0 {
		c.SKUs = 100
	}
	if c.Days <= 0 {
		c.Days = 70
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.AnomalyRate <= 0 {
		c.AnomalyRate = 0.02
	}
	if c.MalformedRate == 0 {
		c.MalformedRate = 0.001
	}
	if c.DuplicateRate == 0 {
		c.DuplicateRate = 0.002
	}
	if c.LateRate == 0 {
		c.LateRate = 0.2
	}
}

// Label is one anomaly a correct engine reports: an exception of Rule on the
// key detected within [From, To].
type Label struct {
	Rule     string    `json:"rule"`
	SKU      string    `json:"sku"`
	Location string    `json:"location"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Cause    string    `json:"cause"`
}

// Stats counts what was written.
type Stats struct {
	Lines, Events, Malformed, Duplicates, Late int
}

const warehouse = "WH01"

type sku struct {
	id       string
	category string
	cost     float64
	rate     float64    // mean units per day at an average store
	week     [7]float64 // weekday multipliers, Sunday first
}

type key struct {
	sku       *sku
	loc       string
	store     bool
	rate      float64 // mean units per day here
	physical  float64
	ledger    float64
	nextCount int
	interval  int
	lastCount time.Time
	transit   []transfer
	anomaly   string
	anomDay   int
	noCounts  bool    // stale anomaly: counts stopped
	divergent string  // anomaly cause while physical ≠ ledger
	shrink    float64 // natural shrink since the last count
}

type transfer struct {
	id      string
	qty     float64
	arrives time.Time
	recvQty float64 // what the receipt will say
	lost    bool
}

type gen struct {
	cfg    Config
	rnd    *rand.Rand
	skus   []*sku
	keys   []*key
	wh     map[string]*key
	day    []item
	labels []Label
	stats  Stats
	seq    int
	trSeq  int
	end    time.Time
}

type item struct {
	arrival int64
	order   int
	ev      sources.Event
	raw     []byte // a malformed line instead of ev
}

// Generate writes the stream to w and returns the labels.
func Generate(cfg Config, w io.Writer) ([]Label, Stats, error) {
	cfg.defaults()
	g := &gen{cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), wh: map[string]*key{}}
	g.end = cfg.Start.AddDate(0, 0, cfg.Days)
	g.setup()
	bw := bufio.NewWriterSize(w, 1<<20)
	var line []byte
	var carry []item
	for d := 0; d < cfg.Days; d++ {
		g.day = append(g.day[:0], carry...)
		carry = carry[:0]
		g.simulateDay(d)
		slices.SortStableFunc(g.day, func(a, b item) int {
			if a.arrival != b.arrival {
				return int(a.arrival - b.arrival)
			}
			return a.order - b.order
		})
		// What arrives after midnight is written with the next day's events.
		next := g.at(d+1, 0).UnixNano()
		n := len(g.day)
		for n > 0 && g.day[n-1].arrival >= next && d+1 < cfg.Days {
			n--
		}
		carry = append(carry, g.day[n:]...)
		for i := range g.day[:n] {
			it := &g.day[i]
			if it.raw != nil {
				line = append(line[:0], it.raw...)
			} else {
				line = sources.AppendJSON(line[:0], &it.ev)
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return nil, g.stats, err
			}
			g.stats.Lines++
		}
	}
	slices.SortFunc(g.labels, func(a, b Label) int { return a.From.Compare(b.From) })
	return g.labels, g.stats, bw.Flush()
}

var categories = []struct {
	name           string
	share          float64
	costLo, costHi float64
}{{"grocery", 0.45, 1, 12}, {"apparel", 0.25, 8, 60}, {"perishable", 0.2, 1, 8}, {"high_value", 0.1, 120, 400}}

func (g *gen) setup() {
	r := g.rnd
	for i := 0; i < g.cfg.SKUs; i++ {
		s := &sku{id: fmt.Sprintf("SKU-%05d", i+1)}
		x := r.Float64()
		for _, c := range categories {
			if x < c.share {
				s.category, s.cost = c.name, math.Round((c.costLo+r.Float64()*(c.costHi-c.costLo))*100)/100
				break
			}
			x -= c.share
		}
		if s.category == "" {
			s.category, s.cost = "grocery", 3
		}
		switch u := r.Float64(); {
		case u < 0.5:
			s.rate = 0.05 + r.Float64()*0.45 // slow sellers: most of the range
		case u < 0.85:
			s.rate = 0.5 + r.Float64()*2.5
		default:
			s.rate = 3 + r.Float64()*12
		}
		weekend := 1.2 + r.Float64()*0.8
		s.week = [7]float64{1.1 * weekend / 1.4, 0.8, 0.8, 0.9, 1.0, 1.15, weekend}
		g.skus = append(g.skus, s)
	}
	for st := 0; st < g.cfg.Stores; st++ {
		loc := fmt.Sprintf("ST%03d", st+1)
		size := 0.5 + r.Float64()*1.5
		for _, s := range g.skus {
			k := &key{sku: s, loc: loc, store: true, rate: s.rate * size}
			k.interval = 7 + r.IntN(14)
			if s.category == "perishable" || s.category == "high_value" {
				k.interval = 5 + r.IntN(6)
			}
			k.nextCount = 1 + r.IntN(k.interval)
			k.physical = math.Ceil(k.rate*k.sku.week[6]*10) + 3
			k.ledger = k.physical
			g.keys = append(g.keys, k)
		}
	}
	for _, s := range g.skus {
		k := &key{sku: s, loc: warehouse, physical: math.Ceil(s.rate*float64(g.cfg.Stores)*60) + 200, interval: 28}
		k.ledger, k.nextCount = k.physical, 14+r.IntN(14)
		g.wh[s.id] = k
	}
	// Anomalies: distinct store keys per kind.
	n := max(3, int(math.Round(float64(len(g.keys))*g.cfg.AnomalyRate)))
	kinds := []string{"negative_stock", "demand_spike", "short_receipt", "over_receipt", "lost_transfer", "count_variance", "stale_count"}
	perm := r.Perm(len(g.keys))
	next := 0
	for _, kind := range kinds {
		for made := 0; made < n && next < len(perm); next++ {
			k := g.keys[perm[next]]
			if (kind == "demand_spike" || kind == "stale_count" || kind == "negative_stock") && k.rate < 0.5 {
				continue
			}
			k.anomaly = kind
			switch kind {
			case "demand_spike":
				k.anomDay = 35 + r.IntN(max(1, g.cfg.Days-36))
			case "stale_count":
				k.anomDay = 3 + r.IntN(5)
			default:
				k.anomDay = 14 + r.IntN(max(1, g.cfg.Days-24))
			}
			made++
		}
	}
}

func (g *gen) at(d int, hours float64) time.Time {
	return g.cfg.Start.AddDate(0, 0, d).Add(time.Duration(hours * float64(time.Hour)))
}

func (g *gen) emit(ev sources.Event, arrival time.Time) {
	g.seq++
	ev.EventID = fmt.Sprintf("%s-%08d", ev.Source, g.seq)
	g.push(ev, arrival)
}

func (g *gen) push(ev sources.Event, arrival time.Time) {
	g.stats.Events++
	g.day = append(g.day, item{arrival: arrival.UnixNano(), order: len(g.day), ev: ev})
	r := g.rnd
	if r.Float64() < g.cfg.DuplicateRate {
		g.stats.Duplicates++
		g.day = append(g.day, item{arrival: arrival.Add(time.Duration(1+r.IntN(50)) * time.Minute).UnixNano(), order: len(g.day), ev: ev})
	}
	if r.Float64() < g.cfg.MalformedRate {
		g.stats.Malformed++
		g.day = append(g.day, item{arrival: arrival.UnixNano(), order: len(g.day), raw: malformed(r, ev)})
	}
}

func (g *gen) event(k *key, typ, source string, t time.Time) sources.Event {
	return sources.Event{Source: source, Type: typ, SKU: k.sku.id, Location: k.loc, Category: k.sku.category, EventTime: t}
}

func (g *gen) label(rule string, k *key, from, to time.Time, cause string) {
	g.labels = append(g.labels, Label{Rule: rule, SKU: k.sku.id, Location: k.loc, From: from, To: to, Cause: cause})
}

func (g *gen) simulateDay(d int) {
	r := g.rnd
	wd := int(g.cfg.Start.AddDate(0, 0, d).Weekday())
	if d == 0 {
		for _, k := range g.allKeys() {
			ev := g.event(k, sources.TypeCount, "wms", g.at(0, 6+r.Float64()))
			ev.OnHand, ev.HasOnHand, ev.UnitCost, ev.HasUnitCost = k.physical, true, k.sku.cost, true
			k.lastCount = ev.EventTime
			g.emit(ev, ev.EventTime)
		}
	}
	for _, s := range g.skus {
		g.countIfDue(g.wh[s.id], d)
	}
	// Warehouse: weekly supplier receipt on Mondays, after the count.
	if wd == int(time.Monday) && d > 0 {
		for _, s := range g.skus {
			k := g.wh[s.id]
			target := math.Ceil(s.rate*float64(g.cfg.Stores)*60) + 200
			if q := target - k.physical; q > 0 {
				ev := g.event(k, sources.TypeReceipt, "wms", g.at(d, 8+r.Float64()))
				ev.Qty, ev.HasQty, ev.UnitCost, ev.HasUnitCost = q, true, s.cost, true
				k.physical += q
				k.ledger += q
				g.emit(ev, ev.EventTime)
			}
		}
	}
	for _, k := range g.keys {
		g.storeDay(k, d, wd)
	}
}

func (g *gen) allKeys() []*key {
	out := slices.Clone(g.keys)
	for _, s := range g.skus {
		out = append(out, g.wh[s.id])
	}
	return out
}

// countIfDue emits the key's cycle count when it is due and returns its index
// in the day's items, or -1.
func (g *gen) countIfDue(k *key, d int) int {
	if d == 0 || d < k.nextCount || k.noCounts {
		return -1
	}
	k.nextCount = d + k.interval
	t := g.at(d, 7+g.rnd.Float64()*0.75)
	g.receive(k, t) // deliveries before the count are in it
	if k.divergent != "" {
		diff := k.physical - k.ledger
		rel := math.Abs(diff) / math.Max(math.Abs(k.ledger), 1)
		if math.Abs(diff) > 2 && rel > 0.1 || math.Abs(diff)*k.sku.cost > 250 {
			g.label("count_variance", k, t, t.Add(12*time.Hour), k.divergent)
		}
		k.divergent = ""
	}
	ev := g.event(k, sources.TypeCount, "wms", t)
	ev.OnHand, ev.HasOnHand, ev.UnitCost, ev.HasUnitCost = k.physical, true, k.sku.cost, true
	k.ledger = k.physical
	k.lastCount = t
	k.shrink = 0
	idx := len(g.day)
	g.emit(ev, t)
	return idx
}

func (g *gen) storeDay(k *key, d, wd int) {
	r := g.rnd
	// Stale anomaly: counts stop after the anomaly day.
	if k.anomaly == "stale_count" && d == k.anomDay && !k.noCounts {
		stale := 30
		if k.sku.category == "perishable" || k.sku.category == "high_value" {
			stale = 14
		}
		from := k.lastCount.AddDate(0, 0, stale)
		if from.Add(72 * time.Hour).Before(g.end) {
			k.noCounts = true
			g.label("stale_count", k, from, g.end, "cycle counts stopped")
		}
	}
	ci := g.countIfDue(k, d)
	// Late delivery: yesterday evening's sale arrives after this count.
	if ci >= 0 && r.Float64() < g.cfg.LateRate && k.physical >= 1 {
		count := &g.day[ci].ev
		ev := g.event(k, sources.TypeSale, "pos", count.EventTime.Add(-time.Duration(9+r.IntN(3))*time.Hour))
		ev.Qty, ev.HasQty = 1, true
		// The sale happened before the count, so the count already saw it:
		// the physical stock (and the counted ledger) are one lower.
		k.physical--
		k.ledger--
		count.OnHand--
		g.stats.Late++
		g.emit(ev, count.EventTime.Add(5*time.Minute))
	}
	// Demand.
	m := k.rate * k.sku.week[wd]
	lambda := m * gammaShape8(r)
	units := poisson(r, lambda)
	if k.anomaly == "demand_spike" && d == k.anomDay {
		extra := math.Max(20, math.Ceil(7*m))
		units += int(extra)
		rt := g.at(d, 7.9) // after the morning counts
		ev := g.event(k, sources.TypeReceipt, "wms", rt)
		ev.Qty, ev.HasQty, ev.UnitCost, ev.HasUnitCost = float64(units)+5, true, k.sku.cost, true
		k.physical += ev.Qty
		k.ledger += ev.Qty
		g.emit(ev, rt)
		g.label("demand_spike", k, g.at(d, 0), g.at(d+1, 0), "demand many times the usual day")
	}
	type sale struct {
		h float64
		q int
	}
	var sales []sale
	for left := units; left > 0; {
		q := 1
		if x := r.Float64(); x > 0.93 {
			q = 3
		} else if x > 0.78 {
			q = 2
		}
		q = min(q, left)
		left -= q
		sales = append(sales, sale{8 + 13*(r.Float64()+r.Float64())/2, q})
	}
	slices.SortFunc(sales, func(a, b sale) int { return cmp.Compare(a.h, b.h) })
	for _, s := range sales {
		g.receive(k, g.at(d, s.h))
		q := float64(s.q)
		if k.physical < q {
			continue // nothing on the shelf: a lost sale, not an event
		}
		t := g.at(d, s.h)
		ev := g.event(k, sources.TypeSale, "pos", t)
		ev.Qty, ev.HasQty = q, true
		k.physical -= q
		k.ledger -= q
		g.emit(ev, t)
	}
	g.receive(k, g.at(d+1, 0))
	// Natural shrink: a unit lost now and then, within any count tolerance.
	if k.sku.category != "high_value" && k.physical >= 1 && k.shrink < 2 && r.Float64() < 0.01 {
		k.physical--
		k.shrink++
	}
	g.anomalies(k, d)
	g.snapshot(k, d)
	g.replenish(k, d)
}

// receive books the transfers that arrive at k before t, in time order.
func (g *gen) receive(k *key, t time.Time) {
	rest := k.transit[:0]
	for _, tr := range k.transit {
		if !tr.arrives.Before(t) {
			rest = append(rest, tr)
			continue
		}
		ev := g.event(k, sources.TypeTransferIn, "wms", tr.arrives)
		ev.Qty, ev.HasQty, ev.TransferID, ev.FromLocation = tr.recvQty, true, tr.id, warehouse
		k.physical += tr.recvQty
		k.ledger += tr.recvQty
		g.emit(ev, tr.arrives)
	}
	k.transit = rest
}

func (g *gen) anomalies(k *key, d int) {
	if d != k.anomDay {
		return
	}
	r := g.rnd
	switch k.anomaly {
	case "negative_stock":
		// A write-off posted to the wrong location drives the ledger below zero.
		t := g.at(d, 21.5)
		q := k.ledger + float64(3+r.IntN(8))
		ev := g.event(k, sources.TypeAdjustment, "manual", t)
		ev.Qty, ev.HasQty = -q, true
		k.ledger -= q
		g.emit(ev, t)
		if r.Float64() < 0.7 {
			fix := t.Add(time.Duration(2+r.IntN(9)) * time.Hour)
			rev := g.event(k, sources.TypeAdjustment, "manual", fix)
			rev.Qty, rev.HasQty = q, true
			k.ledger += q
			g.emit(rev, fix)
			g.label("negative_stock", k, t, fix, "write-off on the wrong location, reversed")
		} else {
			k.divergent = "write-off on the wrong location"
			g.label("negative_stock", k, t, g.at(k.nextCount, 8), "write-off on the wrong location, left to the next count")
		}
	case "count_variance":
		if k.physical < 8 {
			k.anomDay++ // wait for a day with enough stock to lose
			return
		}
		q := math.Max(4, math.Ceil(0.5*k.physical))
		k.physical -= q
		k.divergent = "unrecorded loss (theft or damage)"
	}
}

func (g *gen) snapshot(k *key, d int) {
	if g.rnd.Float64() >= 0.01 {
		return
	}
	t := g.at(d, 22)
	ev := g.event(k, sources.TypeSnapshot, "shopify", t)
	ev.OnHand, ev.HasOnHand = k.ledger, true
	g.emit(ev, t)
}

// replenish ships a transfer from the warehouse when the store runs low.
func (g *gen) replenish(k *key, d int) {
	r := g.rnd
	var inTransit float64
	for _, tr := range k.transit {
		inTransit += tr.qty
	}
	// Cover four busy days of lead time and review, order up to ten: the
	// chain rarely runs out, so observed sales are demand.
	peak := k.rate * k.sku.week[6]
	rop := math.Ceil(peak*4) + 2
	target := math.Ceil(peak*10) + 3
	if k.physical+inTransit > rop {
		return
	}
	q := target - k.physical - inTransit
	wh := g.wh[k.sku.id]
	if q <= 0 || wh.physical < q {
		return
	}
	g.trSeq++
	ship := g.at(d, 22.5+r.Float64())
	lead, due := 14+r.Float64()*40, 72.0
	if k.sku.category == "perishable" {
		lead, due = 4+r.Float64()*10, 24
	}
	tr := transfer{id: fmt.Sprintf("TR-%07d", g.trSeq), qty: q, arrives: ship.Add(time.Duration(lead * float64(time.Hour))), recvQty: q}
	if d >= k.anomDay && k.divergent == "" {
		switch k.anomaly {
		case "short_receipt":
			tr.recvQty = q - math.Max(1, math.Round(0.3*q))
			g.label("transfer_mismatch", k, tr.arrives, tr.arrives.Add(time.Hour), "short receipt")
			k.anomaly = "done"
		case "over_receipt":
			tr.recvQty = q + math.Max(1, math.Round(0.2*q))
			g.label("transfer_mismatch", k, tr.arrives, tr.arrives.Add(time.Hour), "over receipt")
			k.anomaly = "done"
		case "lost_transfer":
			dueAt := ship.Add(time.Duration(due * float64(time.Hour)))
			if dueAt.Add(24 * time.Hour).Before(g.end) {
				tr.lost = true
				g.label("transfer_mismatch", k, dueAt, g.end, "transfer never arrived")
				k.anomaly = "done"
			}
		}
	}
	out := g.event(wh, sources.TypeTransferOut, "wms", ship)
	out.Qty, out.HasQty, out.TransferID, out.ToLocation = q, true, tr.id, k.loc
	wh.physical -= q
	wh.ledger -= q
	g.emit(out, ship)
	if tr.lost {
		return // the store never sees it; it reorders once the shelf runs low
	}
	k.transit = append(k.transit, tr)
}

// gammaShape8 draws a gamma(8, 1/8) variate (mean 1): the day-to-day
// variation of a key's demand rate that makes counts overdispersed.
func gammaShape8(r *rand.Rand) float64 {
	s := 0.0
	for i := 0; i < 8; i++ {
		s -= math.Log(1 - r.Float64())
	}
	return s / 8
}

func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 50 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func malformed(r *rand.Rand, ev sources.Event) []byte {
	good := sources.AppendJSON(nil, &ev)
	switch r.IntN(7) {
	case 0:
		return good[:len(good)/2] // truncated line
	case 1:
		ev.SKU = ""
	case 2:
		ev.Type = "sold"
	case 3:
		ev.Qty, ev.HasQty, ev.Type = -2, true, sources.TypeSale
	case 4:
		return []byte(fmt.Sprintf(`{"event_id":"bad-%d","source":"pos","type":"sale","sku":%q,"location":%q,"qty":"two","event_time":"2026-03-05T10:00:00Z"}`, r.IntN(1e6), ev.SKU, ev.Location))
	case 5:
		return []byte(fmt.Sprintf(`{"event_id":"bad-%d","source":"pos","type":"sale","sku":%q,"location":%q,"qty":1,"event_time":"05/03/2026 10:00"}`, r.IntN(1e6), ev.SKU, ev.Location))
	default:
		return append([]byte{0xff, 0xfe}, good[2:]...) // not UTF-8
	}
	ev.EventID = fmt.Sprintf("bad-%d", r.IntN(1e6))
	return sources.AppendJSON(nil, &ev)
}
