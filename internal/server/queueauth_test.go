package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

// Credentials for a SASL/SCRAM Kafka broker and a NATS server with a user
// come from the config's queues: section (the password from a variable and
// from a file): ingests and follows of URLs without credentials work, the
// same without the config are refused, and the secrets appear in no API
// answer and nowhere in the database.
func TestQueueCredentialsFromConfig(t *testing.T) {
	const kafkaPass, natsPass = "kafka-s3cret-4471", "nats-s3cret-9902"
	kafka := queuetest.KafkaWith(t, kfake.SeedTopics(1, "ev"), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "forge", kafkaPass))
	prod := queuetest.Producer(t, kafka, kgo.SASL(scram.Auth{User: "forge", Pass: kafkaPass}.AsSha256Mechanism()))
	queuetest.Produce(t, prod, "ev", []int32{0}, time.Time{}, []byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"n":3}`))
	natsAddr := queuetest.NATS(t, "--user", "forge", "--pass", natsPass)
	js, _ := queuetest.Stream(t, natsAddr, "EV", nats.UserInfo("forge", natsPass))
	queuetest.PublishNATS(t, js, "EV.x", []byte(`{"n":1}`), []byte(`{"n":2}`))

	dir := t.TempDir()
	passFile := filepath.Join(dir, "nats.pass")
	if err := os.WriteFile(passFile, []byte(natsPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FORGE_TEST_KAFKA_PASSWORD", kafkaPass)
	cfg := filepath.Join(dir, "forge.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `queues:
  %q:
    sasl: scram-sha-256
    user: forge
    password_env: FORGE_TEST_KAFKA_PASSWORD
  "nats://%s":
    user: forge
    password_file: %s
`, kafka, natsAddr, passFile), 0o644); err != nil {
		t.Fatal(err)
	}
	kurl, nurl := "kafka://"+kafka+"/ev", "nats://"+natsAddr+"/EV"

	// Without the config, the brokers refuse Forge.
	plain, _ := startForgeAt(t, freeAddr(t), "--data-dir", filepath.Join(dir, "plain"))
	for _, src := range []string{kurl, nurl} {
		status, b := call(t, "POST", plain.url+"/api/forge/v1/datasets/ev/ingest", map[string]any{"source": src})
		if status != http.StatusUnauthorized || !strings.Contains(string(b), src) {
			t.Errorf("ingest %s without credentials: %d %s, want 401 naming the source", src, status, b)
		}
	}
	plain.kill()

	data := filepath.Join(dir, "data")
	p, _ := startForgeAt(t, freeAddr(t), "--data-dir", data, "--config", cfg)
	var answers bytes.Buffer
	get := func(method, url string, in any) []byte {
		t.Helper()
		status, b := call(t, method, url, in)
		if status != http.StatusOK {
			t.Fatalf("%s %s: %d %s\n%s", method, url, status, b, p.stderr)
		}
		answers.Write(b)
		return b
	}
	for name, src := range map[string]string{"kev": kurl, "nev": nurl} {
		b := get("POST", p.url+"/api/forge/v1/datasets/"+name+"/ingest", map[string]any{"source": src})
		if !strings.Contains(string(b), `"created":true`) {
			t.Errorf("ingest %s: %s", src, b)
		}
		get("POST", p.url+"/api/forge/v1/dataset-follows", map[string]string{"name": name + "f", "source": src, "every": "1h"})
		get("GET", p.url+"/api/forge/v1/datasets/"+name+"/versions", nil)
		get("GET", p.url+"/api/forge/v1/datasets/"+name+"/versions/1", nil)
	}
	get("GET", p.url+"/api/forge/v1/dataset-follows", nil)
	if got := strings.TrimSpace(string(get("POST", p.url+"/api/forge/v1/query", map[string]any{"sql": `SELECT count(*) FROM "kev@1"`}))); !strings.Contains(got, "[3]") {
		t.Errorf("kev@1 holds %s, want 3 rows", got)
	}
	p.term(t)

	for _, secret := range []string{kafkaPass, natsPass} {
		if bytes.Contains(answers.Bytes(), []byte(secret)) {
			t.Errorf("an API answer holds the password %s", secret)
		}
		filepath.Walk(data, func(path string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() {
				if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s holds the password %s", path, secret)
				}
			}
			return nil
		})
	}
}
