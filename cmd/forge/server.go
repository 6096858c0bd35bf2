package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/forge-mlops/forge/internal/config"
	"github.com/forge-mlops/forge/internal/server"
)

func cmdServer(ctx context.Context, c *cli, args []string) error {
	fs := newFlags(c, "server")
	cfg, err := config.Load(fs, args, c.env)
	if err != nil {
		return err
	}
	log := newLogger(c.stderr, cfg.LogFormat, cfg.LogLevel)
	start := time.Now()
	s, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		if addr, ok := <-ready; ok {
			log.Debug("ready", "addr", addr, "startup", time.Since(start))
		}
	}()
	return s.Run(ctx, ready)
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if w == nil {
		w = os.Stderr
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
