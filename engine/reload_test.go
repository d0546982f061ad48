package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skuwatch/skuwatch/rules"
)

// TestHotReload: a good file swaps in on write and on SIGHUP; a broken file
// is refused, the running set stays, and the metric says so.
func TestHotReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write := func(content string) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil { // how editors save
			t.Fatal(err)
		}
	}
	v1 := string(rules.Default)
	write(v1)
	rs, err := LoadRules(path)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	live := NewRules(rs, m)
	results := make(chan error, 10)
	r := &Reloader{Path: path, Rules: live, Debounce: 20 * time.Millisecond, OnReload: func(err error) { results <- err }}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	await := func() error {
		select {
		case err := <-results:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload attempt after the file changed")
			return nil
		}
	}
	time.Sleep(50 * time.Millisecond) // let the watcher start before the first write

	v2 := strings.Replace(v1, `version: "2026.12.1"`, `version: "2026.12.2"`, 1)
	write(v2)
	if err := await(); err != nil {
		t.Fatalf("good file refused: %v", err)
	}
	if got := live.Current().Version; got != "2026.12.2" {
		t.Fatalf("after a good write the version is %s", got)
	}
	if testutil.ToFloat64(m.reloadOK) != 1 {
		t.Error("reload metric is not 1 after a good reload")
	}

	for name, broken := range map[string]string{
		"syntax":       "rules: [",
		"type error":   strings.Replace(v2, "state.on_hand < -t.negative_stock_tolerance", "state.on_hand < \"zero\"", 1),
		"failing test": strings.Replace(v2, "expect: [negative_stock]", "expect: []", 1),
	} {
		write(broken)
		if err := await(); err == nil {
			t.Errorf("%s: broken file accepted", name)
		}
		if got := live.Current().Version; got != "2026.12.2" {
			t.Errorf("%s: running version changed to %s", name, got)
		}
		if testutil.ToFloat64(m.reloadOK) != 0 {
			t.Errorf("%s: reload metric is not 0 after a refused reload", name)
		}
	}

	// Put the good file back; a file beside it does not trigger a reload.
	write(v2)
	if err := await(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// SIGHUP reloads without any file event.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := await(); err != nil {
		t.Fatalf("SIGHUP reload: %v", err)
	}
	if got := live.Current().Version; got != "2026.12.2" {
		t.Errorf("after SIGHUP the version is %s", got)
	}
	select {
	case err := <-results:
		t.Errorf("unexpected extra reload (%v): a file beside the rules triggered one", err)
	case <-time.After(100 * time.Millisecond):
	}
}
