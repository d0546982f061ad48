package bench

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps the engine's partition logs out of benchmark output.
func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}
