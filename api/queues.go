package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// IngestRequest is the body of POST /api/forge/v1/datasets/{name}/ingest:
// the server reads a range of a topic or stream into the next version.
type IngestRequest struct {
	Source      string   `json:"source"` // kafka://... or nats://...; empty with Continue
	From        string   `json:"from,omitempty"`
	Until       string   `json:"until,omitempty"`
	Continue    bool     `json:"continue,omitempty"`
	Schema      []Column `json:"schema,omitempty"`
	Description string   `json:"description,omitempty"`
}

// QueueRange is what a version holds of one partition: every offset in
// [Start, Next); First and Last are the first and last message read (-1: none).
type QueueRange struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	Next      int64 `json:"next"`
	First     int64 `json:"first"`
	Last      int64 `json:"last"`
	Messages  int64 `json:"messages"`
}

// DatasetQueue is the record of a version read from a queue.
type DatasetQueue struct {
	Source           string       `json:"source"`
	Ranges           []QueueRange `json:"ranges"`
	From             string       `json:"from,omitempty"`
	Until            string       `json:"until,omitempty"`
	DeadLetters      int64        `json:"dead_letters"`
	DeadLetterDigest string       `json:"dead_letter_digest,omitempty"`
}

// IngestResult is the answer to an ingest: Version is nil when the range
// held no message.
type IngestResult struct {
	Version  *DatasetVersion `json:"version"`
	Created  bool            `json:"created"`
	Messages int64           `json:"messages"`
	Queue    DatasetQueue    `json:"queue"`
}

// DatasetFollow is a server-side ingestor of a topic or stream.
type DatasetFollow struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	EveryMS   int64  `json:"every_ms,omitempty"`
	EveryRows int64  `json:"every_rows,omitempty"`
	Schema    string `json:"schema,omitempty"`
	CreatedBy string `json:"created_by"`
	CreatedAt int64  `json:"created_at"`
	LastRunAt int64  `json:"last_run_at"`
	LastError string `json:"last_error"`
}

// IngestDataset asks the server to read a range of a queue into the next
// version of name.
func (c *Client) IngestDataset(ctx context.Context, name string, req IngestRequest) (IngestResult, error) {
	var out IngestResult
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/datasets/"+url.PathEscape(name)+"/ingest", nil, req, &out)
	return out, err
}

// DatasetDeadLetters returns the dead-letter JSON lines of a version.
func (c *Client) DatasetDeadLetters(ctx context.Context, ref string) (io.ReadCloser, error) {
	resp, err := c.Request(ctx, http.MethodGet, datasetPath(ref)+"/dead-letters", nil, nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// FollowDataset registers a follow: every is "10m" or "100000rows".
func (c *Client) FollowDataset(ctx context.Context, name, source, every, schema string) (DatasetFollow, error) {
	var out struct {
		Follow DatasetFollow `json:"follow"`
	}
	in := map[string]string{"name": name, "source": source, "every": every, "schema": schema}
	err := c.Do(ctx, http.MethodPost, "/api/forge/v1/dataset-follows", nil, in, &out)
	return out.Follow, err
}

// DatasetFollows lists the follows.
func (c *Client) DatasetFollows(ctx context.Context) ([]DatasetFollow, error) {
	var out struct {
		Follows []DatasetFollow `json:"follows"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/dataset-follows", nil, nil, &out)
	return out.Follows, err
}

// UnfollowDataset removes the follow of name; its versions stay.
func (c *Client) UnfollowDataset(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/forge/v1/dataset-follows/"+url.PathEscape(name), nil, nil, nil)
}
