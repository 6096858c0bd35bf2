package api

import (
	"context"
	"net/http"
)

// GCRequest is POST /api/forge/v1/admin/gc: sweep the blob store of blobs
// nothing refers to any more.
type GCRequest struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool `json:"dry_run"`
	// Grace keeps unreferenced blobs stored more recently than this (a Go
	// duration; default 24h, at least 1m): an upload's record may not
	// exist yet.
	Grace string `json:"grace,omitempty"`
}

// GCReport is what a sweep found and did.
type GCReport struct {
	DryRun       bool   `json:"dry_run"`
	Grace        string `json:"grace"`
	Blobs        int    `json:"blobs"`
	Bytes        int64  `json:"bytes"`
	Referenced   int    `json:"referenced"`
	Young        int    `json:"young"`         // unreferenced, stored within the grace period
	Garbage      int    `json:"garbage"`       // unreferenced and older
	GarbageBytes int64  `json:"garbage_bytes"` // their size
	Removed      int    `json:"removed"`       // of the garbage (0 on a dry run)
	RemovedBytes int64  `json:"removed_bytes"`
	// Temporary files (uploads, spills) left by a process that died, with
	// nothing changed in them for an hour: removed, or on a dry run to be.
	Temp      int   `json:"temp"`
	TempBytes int64 `json:"temp_bytes"`
}

// CollectGarbage asks the server to sweep its blob store (forge gc).
func (c *Client) CollectGarbage(ctx context.Context, req GCRequest) (GCReport, error) {
	var out GCReport
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/admin/gc", nil, req, &out)
	return out, err
}
