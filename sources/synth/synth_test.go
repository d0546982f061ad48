package synth

import (
	"bytes"
	"testing"
	"time"
)

func TestGenerateDeterministicAndLabelled(t *testing.T) {
	cfg := Config{Stores: 3, SKUs: 40, Days: 60, Seed: 9}
	var a, b bytes.Buffer
	la, sa, err := Generate(cfg, &a)
	if err != nil {
		t.Fatal(err)
	}
	lb, _, _ := Generate(cfg, &b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) || len(la) != len(lb) {
		t.Fatal("same config and seed gave different streams")
	}
	if sa.Lines != bytes.Count(a.Bytes(), []byte("\n")) || sa.Malformed == 0 || sa.Duplicates == 0 || sa.Late == 0 {
		t.Errorf("stats %+v", sa)
	}
	kinds := map[string]int{}
	for _, l := range la {
		kinds[l.Rule]++
		if l.To.Before(l.From) {
			t.Errorf("label window ends before it starts: %+v", l)
		}
	}
	for _, r := range []string{"negative_stock", "demand_spike", "transfer_mismatch", "count_variance", "stale_count"} {
		if kinds[r] == 0 {
			t.Errorf("no %s labels: %v", r, kinds)
		}
	}
}

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func TestScore(t *testing.T) {
	labels := []Label{{Rule: "r", SKU: "s", Location: "l", From: t0, To: t0.Add(3600e9)}}
	dets := []Detection{{"r", "s", "l", t0.Add(60e9)}, {"r", "s", "other", t0}}
	sc := Score(labels, dets)
	if len(sc) != 1 || sc[0].TruePositives != 1 || sc[0].Precision != 0.5 || sc[0].Recall != 1 {
		t.Errorf("score %+v", sc)
	}
}
