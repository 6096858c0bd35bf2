package duckq

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/forge-mlops/forge"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// startPostgres runs a throwaway PostgreSQL cluster on a free port and
// returns its DSN. PostgreSQL refuses to run as root, so the server runs as
// the postgres user, in a directory that user owns.
func startPostgres(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "duckq-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(pgBin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	data := filepath.Join(dir, "data")
	run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir), "start")
	t.Cleanup(func() {
		cmd := exec.Command(filepath.Join(pgBin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Run()
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func TestConvertPostgres(t *testing.T) {
	dsn := startPostgres(t)
	ctx := context.Background()
	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(ctx)
	_, err = pg.Exec(ctx, `
		CREATE TABLE orders (
			id bigint PRIMARY KEY, qty integer, price numeric(10,2), ratio double precision,
			note text, day date, at timestamp, paid boolean, ref uuid, meta jsonb);
		INSERT INTO orders
		SELECT i, i % 7, (i * 1.25)::numeric(10,2), i / 3.0, CASE WHEN i % 5 = 0 THEN NULL ELSE 'n' || i END,
		       date '2024-01-01' + i, timestamp '2024-01-01 00:00:00' + i * interval '1 minute', i % 2 = 0,
		       md5(i::text)::uuid, jsonb_build_object('k', i)
		FROM generate_series(1, 1000) i;`)
	if err != nil {
		t.Fatal(err)
	}

	e := newTestEngine(t, EngineOptions{})
	dst := filepath.Join(t.TempDir(), "orders.parquet")
	tab, err := e.ConvertPostgres(ctx, dsn, "SELECT * FROM orders ORDER BY id", dst)
	if err != nil {
		t.Fatal(err)
	}
	wantCols := []Column{{"id", "BIGINT"}, {"qty", "INTEGER"}, {"price", "DECIMAL(10,2)"}, {"ratio", "DOUBLE"},
		{"note", "VARCHAR"}, {"day", "DATE"}, {"at", "TIMESTAMP"}, {"paid", "BOOLEAN"}, {"ref", "UUID"}, {"meta", "VARCHAR"}}
	if diff := cmp.Diff(Table{Rows: 1000, Columns: wantCols}, tab); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}

	// Every value must match what PostgreSQL itself prints for the row.
	var want []string
	pgRows, err := pg.Query(ctx, `SELECT concat_ws('|', id, qty, price, ratio, coalesce(note, 'NULL'), day,
		to_char(at, 'YYYY-MM-DD HH24:MI:SS'), paid, ref, replace(meta::text, ' ', '')) FROM orders ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for pgRows.Next() {
		var s string
		if err := pgRows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		want = append(want, s)
	}
	var got []string
	for _, r := range readBack(t, dst) {
		// Both print the same values with different habits: PostgreSQL
		// writes a whole double as 1 and a boolean as t.
		r[3] = strings.TrimSuffix(r[3], ".0")
		r[7] = map[string]string{"true": "t", "false": "f"}[r[7]]
		got = append(got, strings.Join(r, "|"))
	}
	if diff := cmp.Diff(want[:5], got[:5]); diff != "" {
		t.Errorf("first rows (-postgres +parquet):\n%s", diff)
	}
	mismatches := 0
	for i := range want {
		if i < len(got) && want[i] != got[i] {
			mismatches++
		}
	}
	if mismatches > 0 || len(got) != len(want) {
		t.Errorf("%d of %d rows differ from PostgreSQL's text", mismatches, len(want))
	}

	for _, tc := range []struct{ name, dsn, query string }{
		{"syntax error", dsn, "SELEC 1"},
		{"missing table", dsn, "SELECT * FROM nope"},
		{"write in read-only transaction", dsn, "INSERT INTO orders (id) VALUES (5000) RETURNING id"},
		{"bad dsn", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2", "SELECT 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ConvertPostgres(ctx, tc.dsn, tc.query, filepath.Join(t.TempDir(), "x.parquet"))
			if !forge.IsKind(err, forge.Invalid) {
				t.Errorf("got %v (kind %v), want Invalid", err, forge.KindOf(err))
			}
		})
	}
	var n int
	if err := pg.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 1000 {
		t.Errorf("orders has %d rows (%v) after the read-only attempt, want 1000", n, err)
	}
}
