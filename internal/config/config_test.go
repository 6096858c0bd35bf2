package config_test

import (
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/forge-mlops/forge/internal/config"
)

func env(vars ...string) config.Env {
	m := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func load(args []string, e config.Env) (config.Server, error) {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return config.Load(fs, args, e)
}

// Each bad value, wherever it comes from, gives a one-line error that names
// the field.
func TestBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"yaml log level", []string{"--config", "testdata/bad-log-level.yaml"}, nil, "log_level"},
		{"yaml unknown field", []string{"--config", "testdata/unknown-field.yaml"}, nil, "listen"},
		{"yaml negative timeout", []string{"--config", "testdata/negative-timeout.yaml"}, nil, "http.read_timeout"},
		{"yaml zero threads", []string{"--config", "testdata/zero-threads.yaml"}, nil, "duckdb.threads"},
		{"yaml alert metric", []string{"--config", "testdata/monitor-bad-alert.yaml"}, nil, `monitor.alerts[1].metric: "p99"`},
		{"yaml alert webhook", []string{"--config", "testdata/monitor-bad-webhook.yaml"}, nil, "monitor.alerts[0].webhook"},
		{"yaml queues missing variable", []string{"--config", "testdata/queues-missing-env.yaml"}, nil, "queues: broker1:9092.password_env: the variable FORGE_TEST_NO_SUCH_VAR is not set"},
		{"yaml wrong type", []string{"--config", "testdata/wrong-type.yaml"}, nil, "addr"},
		{"yaml missing", []string{"--config=testdata/absent.yaml"}, nil, "absent.yaml"},
		{"env log format", nil, []string{"FORGE_LOG_FORMAT=xml"}, "log_format"},
		{"env auth", nil, []string{"FORGE_AUTH=maybe"}, "FORGE_AUTH"},
		{"env body limit", nil, []string{"FORGE_MAX_BODY_BYTES=lots"}, "FORGE_MAX_BODY_BYTES"},
		{"env threads", nil, []string{"FORGE_DUCKDB_THREADS=two"}, "FORGE_DUCKDB_THREADS"},
		{"env db", nil, []string{"FORGE_DB=mysql://u:secret@h/db"}, "db"},
		{"flag addr", []string{"--addr", "nowhere"}, nil, "addr"},
		{"flag level", []string{"--log-level", "loud"}, nil, "log_level"},
		{"flag body limit", []string{"--max-body-bytes", "-1"}, nil, "http.max_body_bytes"},
		{"flag data dir", []string{"--data-dir", ""}, nil, "data_dir"},
		{"env run as", nil, []string{"FORGE_RUN_AS=no body"}, "run_as"},
		{"flag run as", []string{"--run-as", "../root"}, nil, "run_as"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(tc.args, env(tc.env...))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %q", msg, tc.want)
			}
			if strings.Contains(msg, "secret") {
				t.Errorf("error %q shows a password", msg)
			}
		})
	}
}

// The queues: section's secrets are read from the variables it names.
func TestQueuesConfig(t *testing.T) {
	c, err := load([]string{"--config", "testdata/queues.yaml"}, env("KAFKA_PASSWORD=kp", "NATS_TOKEN=nt"))
	if err != nil {
		t.Fatal(err)
	}
	k, n := c.Queues["broker1:9092"], c.Queues["nats://nats:4222"]
	if k.User != "forge" || k.Password != "kp" || k.SASL != "scram-sha-512" || !k.TLS.On() || n.Token != "nt" {
		t.Errorf("queues: %+v", c.Queues)
	}
}

// Defaults, then the file, then the environment, then flags.
func TestPrecedence(t *testing.T) {
	c, err := load([]string{"--config", "testdata/good.yaml", "--log-level", "warn"},
		env("FORGE_LOG_LEVEL=error", "FORGE_ADDR=127.0.0.1:9100"))
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	if c.Addr != "127.0.0.1:9100" || c.LogLevel != "warn" || c.HTTP.MaxBodyBytes != 1000 ||
		c.HTTP.ShutdownTimeout != 3*time.Second || c.DuckDB.Threads != 4 || c.DataDir != d.DataDir || c.HTTP.ReadTimeout != d.HTTP.ReadTimeout {
		t.Fatalf("merged config: %+v", c)
	}
}

// The S3 blob store from the file, the environment and flags; credentials
// only from the environment.
func TestS3Config(t *testing.T) {
	c, err := load([]string{"--config", "testdata/s3.yaml", "--s3-path-style"},
		env("FORGE_S3_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK"))
	if err != nil {
		t.Fatal(err)
	}
	bucket, prefix, ok := c.BlobS3()
	if !ok || bucket != "models" || prefix != "team/forge" || c.S3.Endpoint != "http://127.0.0.1:7070" ||
		c.S3.Region != "us-east-1" || !c.S3.PathStyle || c.S3.AccessKeyID != "AK" || c.S3.SecretAccessKey != "SK" {
		t.Fatalf("s3 config: %+v %s %s %v", c.S3, bucket, prefix, ok)
	}
	c, err = load([]string{"--blob", "s3://other"}, env("FORGE_BLOB=s3://models", "FORGE_S3_PATH_STYLE=true"))
	if b, _, _ := c.BlobS3(); err != nil || b != "other" || !c.S3.PathStyle {
		t.Fatalf("flag over env: %s %+v %v", c.Blob, c.S3, err)
	}
	if _, _, ok := config.Default().BlobS3(); ok {
		t.Fatal("default is not the local folder")
	}

	_, err = load([]string{"--config", "testdata/s3-secret.yaml"}, env())
	if err == nil || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("credentials in the file: %v", err)
	}
	for _, tc := range []struct {
		args, env []string
		want      string
	}{
		{[]string{"--blob", "gs://x/y"}, nil, "blob"},
		{[]string{"--blob", "s3://"}, nil, "blob"},
		{nil, []string{"FORGE_S3_PATH_STYLE=sure"}, "FORGE_S3_PATH_STYLE"},
		{[]string{"--s3-endpoint", "127.0.0.1:7070"}, nil, "s3.endpoint"},
	} {
		if _, err := load(tc.args, env(tc.env...)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want an error naming %s", tc.args, tc.env, err, tc.want)
		}
	}
}

// run_as comes from the file, the environment or a flag; without it a root
// server runs local jobs as the dedicated user.
func TestRunAs(t *testing.T) {
	file := t.TempDir() + "/run-as.yaml"
	os.WriteFile(file, []byte("run_as: trainer\n"), 0o644)
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--config", file}, nil, "trainer"},
		{[]string{"--config", file}, []string{"FORGE_RUN_AS=1001"}, "1001"},
		{[]string{"--config", file, "--run-as", "ml"}, []string{"FORGE_RUN_AS=1001"}, "ml"},
	} {
		c, err := load(tc.args, env(tc.env...))
		if err != nil {
			t.Fatal(err)
		}
		if c.JobUser() != tc.want {
			t.Errorf("%v %v: job user %q, want %q", tc.args, tc.env, c.JobUser(), tc.want)
		}
	}
	c := config.Default()
	want := ""
	if os.Geteuid() == 0 {
		want = config.DefaultJobUser
	}
	if c.JobUser() != want {
		t.Errorf("default job user %q, want %q", c.JobUser(), want)
	}
}
