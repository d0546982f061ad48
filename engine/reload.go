package engine

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Reloader reloads a rule file when it changes on disk or the process gets
// SIGHUP: load, compile, test, then swap. A file that fails any step is
// refused, the running rules stay in force, and the failure shows in
// skuwatch_rules_last_reload_successful.
type Reloader struct {
	Path   string
	Rules  *Rules
	Logger *slog.Logger
	// Debounce waits this long after the last change before loading, so an
	// editor's write-rename-chmod counts once. The default is 200ms.
	Debounce time.Duration
	// OnReload, if set, is called after every attempt with its error.
	OnReload func(error)
}

// Reload loads the file now and swaps it in if it is good.
func (r *Reloader) Reload() error {
	rs, err := LoadRules(r.Path)
	if err != nil {
		r.Rules.failed()
		r.logger().Error("rule reload refused; the running rules stay in force", "file", r.Path, "err", err)
	} else {
		old := r.Rules.Current()
		r.Rules.swap(rs)
		r.logger().Info("rules reloaded", "file", r.Path, "version", rs.Version, "hash", rs.Hash, "previous", old.Version, "change_note", rs.ChangeNote)
	}
	if r.OnReload != nil {
		r.OnReload(err)
	}
	return err
}

func (r *Reloader) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// Run watches the file's directory (editors replace files by rename) and
// SIGHUP until ctx ends. It owns its goroutines and returns after they stop.
func (r *Reloader) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(r.Path)); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	debounce := r.Debounce
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	target := filepath.Clean(r.Path)
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			r.logger().Debug("rule watcher stopped", "cause", ctx.Err())
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) != target || ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) == 0 {
				continue
			}
			if timer == nil {
				timer = time.NewTimer(debounce)
			} else {
				timer.Reset(debounce)
			}
			fire = timer.C
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.logger().Warn("rule file watcher", "err", err)
		case <-fire:
			fire = nil
			_ = r.Reload()
		case <-hup:
			_ = r.Reload()
		}
	}
}
