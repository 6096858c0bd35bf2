package datasets_test

import (
	"context"
	"testing"
	"time"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/datasets"
	"github.com/forge-mlops/forge/internal/sqlstore/sqlstoretest"
)

func TestFollowByRows(t *testing.T) {
	e := newEnv(t, sqlstoretest.OpenSQLite(t))
	br := natsBroker(t)
	ctx := context.Background()
	if _, err := e.svc.AddFollow(ctx, datasets.Follow{Name: "ev", Source: br.url + "?token=x", EveryRows: 10}); forge.KindOf(err) != forge.Invalid {
		t.Errorf("a follow with a token: %v", err)
	}
	if _, err := e.svc.AddFollow(ctx, datasets.Follow{Name: "ev", Source: br.url + "x", EveryRows: 10}); forge.KindOf(err) != forge.NotFound {
		t.Errorf("a follow of an unknown stream: %v", err)
	}
	if _, err := e.svc.AddFollow(ctx, datasets.Follow{Name: "ev", Source: br.url, EveryRows: 10}); err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- datasets.NewFollower(e.svc, 20*time.Millisecond, nil).Run(run) }()
	defer func() { stop(); <-done }()

	br.publish(t, time.Time{}, msgs(0, 6)...)
	fs, _ := e.svc.Follows(ctx)
	// Wait for the follower to have looked after the publish, then check
	// that six waiting messages cut no version.
	for seen := fs[0].LastRunAt; ; {
		if fs, _ = e.svc.Follows(ctx); fs[0].LastRunAt > seen {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := e.svc.Versions(ctx, "ev"); forge.KindOf(err) != forge.NotFound {
		t.Fatalf("6 messages of 10 made a version: %v", err)
	}
	br.publish(t, time.Time{}, msgs(6, 6)...)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if vs, err := e.svc.Versions(ctx, "ev"); err == nil {
			if vs[0].Rows != 12 {
				t.Errorf("the followed version has %d rows, want 12", vs[0].Rows)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no version after 12 messages")
		}
	}
}
