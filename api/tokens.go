package api

import (
	"context"
	"net/http"
	"net/url"
)

// Token is an access token's public record; its secret is shown only once,
// at creation.
type Token struct {
	Name string `json:"name"`
	// Role is read, write or admin.
	Role      string `json:"role"`
	CreatedAt int64  `json:"created_at"`
	// ExpiresAt is 0 for a token that does not expire (Unix ms).
	ExpiresAt int64 `json:"expires_at,omitempty"`
	RevokedAt int64 `json:"revoked_at,omitempty"`
	// RunID is set on a job's token: it may write only to that run.
	RunID string `json:"run_id,omitempty"`
}

// CreateTokenRequest is the body of POST /api/forge/v1/tokens.
type CreateTokenRequest struct {
	Name string `json:"name"`
	// Role is read, write or admin.
	Role string `json:"role"`
	// Expires is how long the token lives, e.g. "90d" or "12h"; empty: for ever.
	Expires string `json:"expires,omitempty"`
}

// CreatedToken is a new token with its secret.
type CreatedToken struct {
	Token
	Secret string `json:"token"`
}

// Identity is who a request is authenticated as (GET
// /api/forge/v1/auth/whoami, POST /api/forge/v1/auth/session).
type Identity struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// RunID is set for a job's token: the one run it may write.
	RunID string `json:"run_id,omitempty"`
	// Auth is false when the server runs without access control.
	Auth bool `json:"auth"`
}

// CreateToken makes a token; only an admin may.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (CreatedToken, error) {
	var out CreatedToken
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/tokens", nil, req, &out)
	return out, err
}

// Tokens lists every token, revoked ones included.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/tokens", nil, nil, &out)
	return out.Tokens, err
}

// RevokeToken disables the token named name.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/forge/v1/tokens/"+url.PathEscape(name), nil, nil, nil)
}
