package engine

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/skuwatch/skuwatch/rules"
)

// Rules holds the running ruleset. Readers take a snapshot with Current for
// each key they evaluate; a reload swaps the pointer, so no evaluation ever
// sees a half-loaded set. Safe for concurrent use.
type Rules struct {
	p atomic.Pointer[rules.Ruleset]
	m *Metrics
}

// NewRules starts with rs running.
func NewRules(rs *rules.Ruleset, m *Metrics) *Rules {
	if m == nil {
		m = NewMetrics(nil)
	}
	r := &Rules{m: m}
	r.swap(rs)
	return r
}

// Current is the running ruleset.
func (r *Rules) Current() *rules.Ruleset { return r.p.Load() }

func (r *Rules) swap(rs *rules.Ruleset) {
	if old := r.p.Swap(rs); old != nil {
		r.m.rulesetInfo.DeleteLabelValues(old.Version, old.Hash)
	}
	r.m.rulesetInfo.WithLabelValues(rs.Version, rs.Hash).Set(1)
	r.m.reloadOK.Set(1)
	r.m.reloadTime.Set(float64(time.Now().Unix()))
	r.m.reloads.WithLabelValues("success").Inc()
}

func (r *Rules) failed() {
	r.m.reloadOK.Set(0)
	r.m.reloads.WithLabelValues("failure").Inc()
}

// LoadRules loads, compiles and tests a rule file: the only way a ruleset is
// made ready to run. The error lists every problem as file:line: text.
func LoadRules(path string) (*rules.Ruleset, error) {
	rs, err := rules.LoadFile(path)
	if err != nil {
		return nil, err
	}
	return testLoaded(rs)
}

// LoadRulesBytes is LoadRules for content already in memory; name is used in
// messages.
func LoadRulesBytes(name string, b []byte) (*rules.Ruleset, error) {
	rs, err := rules.Load(name, b)
	if err != nil {
		return nil, err
	}
	return testLoaded(rs)
}

func testLoaded(rs *rules.Ruleset) (*rules.Ruleset, error) {
	if fails := TestRules(rs); len(fails) > 0 {
		msgs := make([]string, len(fails))
		for i, f := range fails {
			msgs[i] = f.String()
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	return rs, nil
}
