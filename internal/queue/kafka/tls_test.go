package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/forge-mlops/forge/internal/queue"
	"github.com/forge-mlops/forge/internal/queue/kafka"
	"github.com/forge-mlops/forge/internal/queue/queuetest"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

// The config's TLS settings are used: a broker whose certificate the
// config's CA signed is reached; with the system's roots it is not.
func TestTLSFromConfig(t *testing.T) {
	cert, ca := selfSigned(t)
	addr := queuetest.KafkaWith(t, kfake.SeedTopics(1, "ev"), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	ep, err := queue.ParseURL("kafka://" + addr + "/ev")
	if err != nil {
		t.Fatal(err)
	}
	open := func(a queue.Auth) error {
		auths, err := queue.Auths{addr: a}.Resolve(func(string) (string, bool) { return "", false })
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := kafka.Open(ctx, auths.WithAuth(ep))
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := open(queue.Auth{TLS: queue.TLS{CAFile: ca}}); err != nil {
		t.Errorf("with the config's CA: %v", err)
	}
	if err := open(queue.Auth{TLS: queue.TLS{Enabled: true}}); err == nil {
		t.Error("a self-signed broker was trusted with the system's roots")
	}
	if err := open(queue.Auth{TLS: queue.TLS{CAFile: filepath.Join(t.TempDir(), "none.pem")}}); err == nil {
		t.Error("a missing CA file was accepted") // by Resolve, when the server starts
	}
}
