package api

import (
	"context"
	"strings"
	"testing"
)

func TestCheckServerURL(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"http://127.0.0.1:7700", ""},
		{"https://forge.example.com", ""},
		{"HTTP://localhost:7700/", ""},
		{"localhost:7700", `server URL "localhost:7700" needs a scheme: want http://HOST:PORT or https://HOST, e.g. http://localhost:7700`},
		{"127.0.0.1:7700", "e.g. http://127.0.0.1:7700"},
		{"forge.internal", "e.g. http://forge.internal"},
		{"ftp://x", `"ftp://x" needs a scheme: want http://HOST:PORT`},
		{"", "needs a scheme"},
		{"http://", "has no host"},
	} {
		err := CheckServerURL(tt.url)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.url, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.url, err, tt.want)
		}
	}
	// A client for such a URL answers every call with the same message,
	// not Go's parse error.
	_, err := NewClient("localhost:7700", "").Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "needs a scheme") {
		t.Errorf("call through a URL without scheme: %v", err)
	}
}
