package queue

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/forge-mlops/forge"
)

// Auth is how Forge authenticates to one broker or NATS server, from the
// server's config (section queues:). Secrets are named by an environment
// variable or a file, never written in the config; none of it is stored
// with a version, a follow or a deployment, or answered by the API.
type Auth struct {
	// SASL is the Kafka mechanism: plain, scram-sha-256 or scram-sha-512
	// (default plain when a user is set).
	SASL string `yaml:"sasl"`
	User string `yaml:"user"`
	// PasswordEnv / PasswordFile: where the password is read.
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// TokenEnv / TokenFile: a NATS token.
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
	// CredsFile is a NATS .creds file (JWT and NKey seed).
	CredsFile string `yaml:"creds_file"`
	TLS       TLS    `yaml:"tls"`

	// Read by Resolve.
	Password string `yaml:"-" json:"-"`
	Token    string `yaml:"-" json:"-"`
}

// TLS are the TLS settings of a broker connection.
type TLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the broker (default: the system's roots).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify accepts any broker certificate (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is asked for.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.InsecureSkipVerify
}

// Config builds the tls.Config.
func (t TLS) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Auths are the config's queues: section, keyed by HOST:PORT, or by
// kafka://HOST:PORT or nats://HOST:PORT when one host serves both.
type Auths map[string]Auth

// Resolve checks every entry and reads its secrets with lookup (the
// config's view of the environment) and from their files, so a missing
// variable or file is reported when the server starts.
func (a Auths) Resolve(lookup func(string) (string, bool)) (Auths, error) {
	out := make(Auths, len(a))
	for k, v := range a {
		switch strings.ToLower(v.SASL) {
		case "", "plain", "scram-sha-256", "scram-sha-512":
		default:
			return nil, fmt.Errorf("%s.sasl: %q: want plain, scram-sha-256 or scram-sha-512", k, v.SASL)
		}
		if h := strings.TrimPrefix(strings.TrimPrefix(k, "kafka://"), "nats://"); strings.Contains(h, "/") || !strings.Contains(h, ":") {
			return nil, fmt.Errorf("%s: want HOST:PORT, kafka://HOST:PORT or nats://HOST:PORT", k)
		}
		// Secrets set in Go (tests) are kept when no variable or file is named.
		if p, err := secret(lookup, "password", v.PasswordEnv, v.PasswordFile); err != nil {
			return nil, fmt.Errorf("%s.%w", k, err)
		} else if p != "" {
			v.Password = p
		}
		if tk, err := secret(lookup, "token", v.TokenEnv, v.TokenFile); err != nil {
			return nil, fmt.Errorf("%s.%w", k, err)
		} else if tk != "" {
			v.Token = tk
		}
		if v.CredsFile != "" {
			if _, err := os.Stat(v.CredsFile); err != nil {
				return nil, fmt.Errorf("%s.creds_file: %w", k, err)
			}
		}
		if v.TLS.On() {
			if _, err := v.TLS.Config(); err != nil {
				return nil, fmt.Errorf("%s.%w", k, err)
			}
		}
		out[k] = v
	}
	return out, nil
}

func secret(lookup func(string) (string, bool), what, env, file string) (string, error) {
	switch {
	case env != "" && file != "":
		return "", fmt.Errorf("%s_env and %s_file: set one", what, what)
	case env != "":
		v, ok := lookup(env)
		if !ok {
			return "", fmt.Errorf("%s_env: the variable %s is not set", what, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: %w", what, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", nil
}

// For returns the entry for ep: the first of its hosts with one, by
// scheme://HOST:PORT first, then HOST:PORT.
func (a Auths) For(ep Endpoint) (Auth, bool) {
	for _, h := range ep.Hosts {
		for _, k := range []string{ep.Scheme + "://" + h, h} {
			if v, ok := a[k]; ok {
				return v, true
			}
		}
	}
	return Auth{}, false
}

// WithAuth gives ep the config's credentials for its hosts, where the URL
// has none of its own. The endpoint's String (what is recorded) does not
// change.
func (a Auths) WithAuth(ep Endpoint) Endpoint {
	if au, ok := a.For(ep); ok {
		ep.Auth = &au
	}
	return ep
}

// Credentials is the user, password, SASL mechanism and token to connect
// with: the URL's when it has them, else the config's.
func (e Endpoint) Credentials() (user, password, sasl, token string) {
	user, password, sasl, token = e.User, e.Password, e.Options.Get("sasl"), e.Options.Get("token")
	if a := e.Auth; a != nil {
		if user == "" {
			user, password = a.User, a.Password
		}
		if sasl == "" {
			sasl = strings.ToLower(a.SASL)
		}
		if token == "" {
			token = a.Token
		}
	}
	return user, password, sasl, token
}

// TLSConfig is the TLS to connect with: the config's, or ?tls=true in the
// URL; nil for none.
func (e Endpoint) TLSConfig() (*tls.Config, error) {
	if e.Auth != nil && e.Auth.TLS.On() {
		c, err := e.Auth.TLS.Config()
		if err != nil {
			return nil, forge.Errorf(forge.Invalid, "%s: %v", e, err)
		}
		return c, nil
	}
	if t := e.Options.Get("tls"); t == "true" || t == "1" {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	return nil, nil
}
