package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Column is a dataset column and its DuckDB type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// DatasetVersion is one immutable version of a dataset.
type DatasetVersion struct {
	Name        string   `json:"name"`
	Version     int64    `json:"version"`
	Digest      string   `json:"digest"` // sha256 of the Parquet file
	Rows        int64    `json:"rows"`
	Bytes       int64    `json:"bytes"`
	Columns     []Column `json:"columns"`
	Source      string   `json:"source"`
	Description string   `json:"description"`
	CreatedBy   string   `json:"created_by"`
	CreatedAt   int64    `json:"created_at"` // ms since the epoch
	Parent      *int64   `json:"parent,omitempty"`
}

// Ref is "name@version".
func (v DatasetVersion) Ref() string { return fmt.Sprintf("%s@%d", v.Name, v.Version) }

// DatasetSummary summarizes a dataset by its latest version.
type DatasetSummary struct {
	Name      string         `json:"name"`
	Versions  int            `json:"versions"`
	Latest    DatasetVersion `json:"latest"`
	UpdatedAt int64          `json:"updated_at"`
}

// DatasetRun is a tracking run that used a dataset version.
type DatasetRun struct {
	RunID        string `json:"run_id"`
	RunName      string `json:"run_name"`
	ExperimentID string `json:"experiment_id"`
	Status       string `json:"status"`
	StartTime    int64  `json:"start_time"`
	Context      string `json:"context,omitempty"`
}

// AddDatasetResult is the answer to an upload: the version, and whether it
// is new (false: identical content was already a version of the dataset).
type AddDatasetResult struct {
	Version DatasetVersion `json:"version"`
	Created bool           `json:"created"`
}

// DatasetShow is a version with its lineage: the runs that used it.
type DatasetShow struct {
	Version DatasetVersion `json:"version"`
	Runs    []DatasetRun   `json:"runs"`
	Queue   *DatasetQueue  `json:"queue,omitempty"` // for a version read from a queue
}

// Profile is per-column statistics of a dataset version.
type Profile struct {
	Rows    int64           `json:"rows"`
	Columns []ColumnProfile `json:"columns"`
}

// ColumnProfile holds one column's statistics; which are set depends on
// Kind (number, text, time, bool, other).
type ColumnProfile struct {
	Name           string     `json:"name"`
	Type           string     `json:"type"`
	Kind           string     `json:"kind"`
	Count          int64      `json:"count"`
	Nulls          int64      `json:"nulls"`
	ApproxDistinct int64      `json:"approx_distinct"`
	Min            any        `json:"min,omitempty"`
	Max            any        `json:"max,omitempty"`
	Mean           *float64   `json:"mean,omitempty"`
	Std            *float64   `json:"std,omitempty"`
	Quantiles      *Quantiles `json:"quantiles,omitempty"`
	TopValues      []Value    `json:"top_values,omitempty"`
	Histogram      *Histogram `json:"histogram,omitempty"`
}

// Quantiles of a number column, exact (interpolated between the closest
// ranks, as DuckDB's quantile_cont) over all its finite values.
type Quantiles struct {
	P05 float64 `json:"p05"`
	P25 float64 `json:"p25"`
	P50 float64 `json:"p50"`
	P75 float64 `json:"p75"`
	P95 float64 `json:"p95"`
}

// Value is a value and how many rows hold it.
type Value struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// Histogram has equal-width bins; Counts[i] is in [Edges[i], Edges[i+1]).
type Histogram struct {
	Edges  []float64 `json:"edges"`
	Counts []int64   `json:"counts"`
}

// DatasetProfile is GET .../profile.
type DatasetProfile struct {
	Version DatasetVersion `json:"version"`
	Profile Profile        `json:"profile"`
}

// Diff compares two versions, A the reference.
type Diff struct {
	RowsA       int64        `json:"rows_a"`
	RowsB       int64        `json:"rows_b"`
	Added       []Column     `json:"added"`
	Removed     []Column     `json:"removed"`
	TypeChanged []TypeChange `json:"type_changed"`
	Columns     []ColumnDiff `json:"columns"`
}

// TypeChange is a column whose type differs between A and B.
type TypeChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// ColumnDiff is the shift of a column present in both versions.
type ColumnDiff struct {
	Name          string   `json:"name"`
	NullFractionA float64  `json:"null_fraction_a"`
	NullFractionB float64  `json:"null_fraction_b"`
	MeanA         *float64 `json:"mean_a,omitempty"`
	MeanB         *float64 `json:"mean_b,omitempty"`
	StdA          *float64 `json:"std_a,omitempty"`
	StdB          *float64 `json:"std_b,omitempty"`
	PSI           *float64 `json:"psi,omitempty"` // population stability index
}

// DatasetDiff is GET /api/forge/v1/dataset-diff.
type DatasetDiff struct {
	A    DatasetVersion `json:"a"`
	B    DatasetVersion `json:"b"`
	Diff Diff           `json:"diff"`
}

// QueryRequest is POST /api/forge/v1/query.
type QueryRequest struct {
	SQL       string `json:"sql"`
	Limit     int    `json:"limit,omitempty"`      // 0: the server's cap
	TimeoutMS int64  `json:"timeout_ms,omitempty"` // 0: the server's timeout
}

// datasetPath is the API path of a reference "name" or "name@version".
func datasetPath(ref string) string {
	name, ver, ok := strings.Cut(ref, "@")
	if !ok {
		ver = "latest"
	}
	return "/api/forge/v1/datasets/" + url.PathEscape(name) + "/versions/" + url.PathEscape(ver)
}

// AddDatasetVersion uploads a Parquet file as the next version of name.
// user is who adds it, recorded when the server has no token to go by.
func (c *Client) AddDatasetVersion(ctx context.Context, name string, parquet io.Reader, source, description, user string) (AddDatasetResult, error) {
	q := url.Values{"source": {source}}
	if description != "" {
		q.Set("description", description)
	}
	u := c.base + "/api/forge/v1/datasets/" + url.PathEscape(name) + "/versions?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, parquet)
	if err != nil {
		return AddDatasetResult{}, err
	}
	// A file's length lets the server refuse an upload over its limit
	// before reading it.
	if n := sizeOf(parquet); n >= 0 {
		req.ContentLength = n
	}
	req.Header.Set("Content-Type", "application/vnd.apache.parquet")
	if user != "" {
		req.Header.Set("X-Forge-User", user)
	}
	resp, err := c.send(req)
	if err != nil {
		return AddDatasetResult{}, err
	}
	defer resp.Body.Close()
	var out AddDatasetResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return AddDatasetResult{}, fmt.Errorf("decode upload response: %w", err)
	}
	return out, nil
}

// ListDatasets lists every dataset with its latest version.
func (c *Client) ListDatasets(ctx context.Context) ([]DatasetSummary, error) {
	var out struct {
		Datasets []DatasetSummary `json:"datasets"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/datasets", nil, nil, &out)
	return out.Datasets, err
}

// DatasetVersions lists a dataset's versions, newest first.
func (c *Client) DatasetVersions(ctx context.Context, name string) ([]DatasetVersion, error) {
	var out struct {
		Versions []DatasetVersion `json:"versions"`
	}
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/datasets/"+url.PathEscape(name)+"/versions", nil, nil, &out)
	return out.Versions, err
}

// ShowDataset returns the version ref names ("name" or "name@N") and the
// runs that used it.
func (c *Client) ShowDataset(ctx context.Context, ref string) (DatasetShow, error) {
	var out DatasetShow
	err := c.Do(ctx, http.MethodGet, datasetPath(ref), nil, nil, &out)
	return out, err
}

// RemoveDataset removes a version ("name@N") or a whole dataset ("name").
func (c *Client) RemoveDataset(ctx context.Context, ref string, force bool) ([]DatasetVersion, error) {
	p := "/api/forge/v1/datasets/" + url.PathEscape(ref)
	if strings.Contains(ref, "@") {
		p = datasetPath(ref)
	}
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	var out struct {
		Removed []DatasetVersion `json:"removed"`
	}
	err := c.Do(ctx, http.MethodDelete, p, q, nil, &out)
	return out.Removed, err
}

// DatasetProfile returns a version's profile.
func (c *Client) DatasetProfile(ctx context.Context, ref string) (DatasetProfile, error) {
	var out DatasetProfile
	err := c.Do(ctx, http.MethodGet, datasetPath(ref)+"/profile", nil, nil, &out)
	return out, err
}

// DiffDatasets compares version b with version a.
func (c *Client) DiffDatasets(ctx context.Context, a, b string) (DatasetDiff, error) {
	var out DatasetDiff
	err := c.Do(ctx, http.MethodGet, "/api/forge/v1/dataset-diff", url.Values{"a": {a}, "b": {b}}, nil, &out)
	return out, err
}

// ErrChecksum is wrapped by the error of a download whose bytes do not hash
// to what the server said.
var ErrChecksum = errors.New("checksum mismatch")

// GetDataset writes the Parquet file of ref to w, checks it against the
// server's X-Content-Sha256, and returns the version's reference and digest.
// On a mismatch w has received bad bytes: write to a temporary file.
func (c *Client) GetDataset(ctx context.Context, ref string, w io.Writer) (resolved, digest string, err error) {
	resp, err := c.Request(ctx, http.MethodGet, datasetPath(ref)+"/data", nil, nil, "")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	want := resp.Header.Get("X-Content-Sha256")
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), resp.Body); err != nil {
		return "", "", fmt.Errorf("download %s: %w", ref, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want == "" || got != want {
		return "", "", fmt.Errorf("download %s: %w: server said %q, received %s", ref, ErrChecksum, want, got)
	}
	return resp.Header.Get("X-Forge-Dataset"), got, nil
}

// QueryStream reads a streamed query result.
type QueryStream struct {
	Columns []Column
	// Rows, Truncated and Err are set once Next has returned false.
	Rows      int64
	Truncated bool

	body io.ReadCloser
	sc   *bufio.Scanner
	row  []any
	err  error
	done bool
}

// Query runs SQL over the datasets on the server and streams the rows.
func (c *Client) Query(ctx context.Context, req QueryRequest) (*QueryStream, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.Request(ctx, http.MethodPost, "/api/forge/v1/query", nil, bytes.NewReader(b), "application/json")
	if err != nil {
		return nil, err
	}
	s := &QueryStream{body: resp.Body, sc: bufio.NewScanner(resp.Body)}
	s.sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var head struct {
		Columns []Column `json:"columns"`
	}
	if !s.sc.Scan() {
		resp.Body.Close()
		return nil, fmt.Errorf("query: the server sent no header: %v", s.sc.Err())
	}
	if err := json.Unmarshal(s.sc.Bytes(), &head); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("query: bad header: %w", err)
	}
	s.Columns = head.Columns
	return s, nil
}

// Next advances to the next row.
func (s *QueryStream) Next() bool {
	if s.done {
		return false
	}
	if !s.sc.Scan() {
		s.done = true
		s.err = s.sc.Err()
		if s.err == nil {
			s.err = errors.New("query: the result ended early (the server stopped or the connection broke)")
		}
		return false
	}
	line := s.sc.Bytes()
	if len(line) > 0 && line[0] == '{' {
		s.done = true
		var t struct {
			Rows      int64  `json:"rows"`
			Truncated bool   `json:"truncated"`
			Error     string `json:"error"`
		}
		if err := json.Unmarshal(line, &t); err != nil {
			s.err = fmt.Errorf("query: bad trailer: %w", err)
			return false
		}
		s.Rows, s.Truncated = t.Rows, t.Truncated
		if t.Error != "" {
			s.err = &Error{Status: http.StatusOK, Message: t.Error}
		}
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	s.row = s.row[:0]
	if err := dec.Decode(&s.row); err != nil {
		s.done = true
		s.err = fmt.Errorf("query: bad row: %w", err)
		return false
	}
	return true
}

// Row returns the current row: JSON values, numbers as json.Number.
func (s *QueryStream) Row() []any { return s.row }

// Err returns what ended the stream early, if anything.
func (s *QueryStream) Err() error { return s.err }

// Close ends the stream; closing early makes the server stop the query.
func (s *QueryStream) Close() error { return s.body.Close() }

// send is Request for a prepared request (an upload with its length).
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the forge server at %s (is `forge server` running? set --server or FORGE_SERVER): %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || (e.Message == "" && e.Code == "") {
			e.Message = strings.TrimSpace(string(b))
		}
		return nil, e
	}
	return resp, nil
}
