package synth

import (
	"sort"
	"time"
)

// Detection is one exception episode as an engine reported it.
type Detection struct {
	Rule, SKU, Location string
	DetectedAt          time.Time
}

// RuleScore is precision and recall of one rule against the labels.
type RuleScore struct {
	Rule                 string
	Labels, Detections   int
	TruePositives        int // detections inside a label's window
	Found                int // labels with at least one detection
	Precision, Recall    float64
	FalsePositiveSamples []Detection
	MissedSamples        []Label
}

// Slack widens each label window on both sides, for timers that round up to
// the minute and detections at the edge of a day.
const Slack = time.Hour

// Score matches detections to labels of the same rule and key whose window
// (± Slack) holds the detection time. Rules with neither labels nor
// detections are left out; the result is sorted by rule.
func Score(labels []Label, dets []Detection) []RuleScore {
	type k struct{ rule, sku, loc string }
	byKey := map[k][]int{}
	for i, l := range labels {
		kk := k{l.Rule, l.SKU, l.Location}
		byKey[kk] = append(byKey[kk], i)
	}
	scores := map[string]*RuleScore{}
	get := func(rule string) *RuleScore {
		s := scores[rule]
		if s == nil {
			s = &RuleScore{Rule: rule}
			scores[rule] = s
		}
		return s
	}
	found := make([]bool, len(labels))
	for _, l := range labels {
		get(l.Rule).Labels++
	}
	for _, d := range dets {
		s := get(d.Rule)
		s.Detections++
		hit := false
		for _, i := range byKey[k{d.Rule, d.SKU, d.Location}] {
			l := labels[i]
			if !d.DetectedAt.Before(l.From.Add(-Slack)) && !d.DetectedAt.After(l.To.Add(Slack)) {
				found[i], hit = true, true
			}
		}
		if hit {
			s.TruePositives++
		} else if len(s.FalsePositiveSamples) < 5 {
			s.FalsePositiveSamples = append(s.FalsePositiveSamples, d)
		}
	}
	for i, l := range labels {
		s := get(l.Rule)
		if found[i] {
			s.Found++
		} else if len(s.MissedSamples) < 5 {
			s.MissedSamples = append(s.MissedSamples, l)
		}
	}
	out := make([]RuleScore, 0, len(scores))
	for _, s := range scores {
		s.Precision, s.Recall = 1, 1
		if s.Detections > 0 {
			s.Precision = float64(s.TruePositives) / float64(s.Detections)
		}
		if s.Labels > 0 {
			s.Recall = float64(s.Found) / float64(s.Labels)
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}
