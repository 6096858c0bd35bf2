package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/forge-mlops/forge/internal/blob/s3test"
	"github.com/forge-mlops/forge/internal/config"
)

// forge serve's replica opens the object store from FORGE_BLOB, FORGE_S3_*
// and the AWS credentials, read-only; without FORGE_BLOB, or with
// credentials the store refuses, it reads through the server and logs why.
func TestReplicaBlobs(t *testing.T) {
	srv := s3test.Start(t, "forge")
	for name, tc := range map[string]struct {
		env    map[string]string
		direct bool
		log    string
	}{
		"credentials": {map[string]string{"FORGE_BLOB": "s3://forge/team", "FORGE_S3_ENDPOINT": srv.Endpoint, "FORGE_S3_PATH_STYLE": "true",
			"FORGE_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey}, true, "read from the object store"},
		"refused": {map[string]string{"FORGE_BLOB": "s3://forge/team", "FORGE_S3_ENDPOINT": srv.Endpoint, "FORGE_S3_PATH_STYLE": "true",
			"FORGE_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong"}, false, "read through the server"},
		"no blob": {map[string]string{}, false, ""},
	} {
		cfg := config.Default()
		if err := cfg.LoadEnv(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		s, err := replicaBlobs(context.Background(), cfg, t.TempDir(), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if (s != nil) != tc.direct || !strings.Contains(logs.String(), tc.log) {
			t.Errorf("%s: store %v, log %q; want direct %v and a log with %q", name, s != nil, logs.String(), tc.direct, tc.log)
		}
	}
}
