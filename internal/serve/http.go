package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/httpapi"
)

// headerLength is the binary tensor extension's header: the length of the
// JSON part of a body whose binary tensor data follows it.
const headerLength = "Inference-Header-Content-Length"

// Routes are the Open Inference Protocol REST API. Health answers anyone
// (probes carry no token); metadata and inference need read access.
func (s *Server) Routes() []httpapi.Route {
	routes := []httpapi.Route{
		{Pattern: "GET /v2/health/live", Access: httpapi.Public, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]bool{"live": true})
		})},
		{Pattern: "GET /v2/health/ready", Access: httpapi.Public, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ok := s.Ready()
			writeJSON(w, statusIf(ok), map[string]bool{"ready": ok})
		})},
		{Pattern: "GET /v2", Access: httpapi.Read, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, s.ServerMetadata())
		})},
	}
	for _, p := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		routes = append(routes,
			httpapi.Route{Pattern: "GET " + p, Handler: http.HandlerFunc(s.handleMetadata), Access: httpapi.Read},
			httpapi.Route{Pattern: "GET " + p + "/ready", Handler: http.HandlerFunc(s.handleReady), Access: httpapi.Read},
			httpapi.Route{Pattern: "POST " + p + "/infer", Handler: http.HandlerFunc(s.handleInfer), Access: httpapi.Read})
	}
	return routes
}

func statusIf(ok bool) int {
	if ok {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// ServerMetadataJSON is the body of GET /v2.
type ServerMetadataJSON struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// ServerMetadata describes the server and the protocol extensions it has.
func (s *Server) ServerMetadata() ServerMetadataJSON {
	return ServerMetadataJSON{Name: s.opts.Name, Version: s.opts.Version, Extensions: []string{"binary_tensor_data"}}
}

type tensorMetadataJSON struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMetadataJSON struct {
	Name     string               `json:"name"`
	Versions []string             `json:"versions"`
	Platform string               `json:"platform"`
	Inputs   []tensorMetadataJSON `json:"inputs"`
	Outputs  []tensorMetadataJSON `json:"outputs"`
	State    string               `json:"state,omitempty"`
	Reason   string               `json:"reason,omitempty"`
}

func tensorsJSON(ts []forge.TensorSpec) []tensorMetadataJSON {
	out := make([]tensorMetadataJSON, len(ts))
	for i, t := range ts {
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		out[i] = tensorMetadataJSON{t.Name, t.Datatype, shape}
	}
	return out
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	md, err := s.ModelMetadata(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, modelMetadataJSON{
		Name: md.Name, Versions: md.Versions, Platform: md.Platform,
		Inputs: tensorsJSON(md.Inputs), Outputs: tensorsJSON(md.Outputs),
		State: md.State, Reason: md.Reason,
	})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ok, err := s.ModelReady(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, statusIf(ok), map[string]any{"name": r.PathValue("name"), "ready": ok})
}

// The JSON request, decoded with encoding/json except for each input's data,
// which parseJSONData reads straight into a typed slice.
type inferRequestJSON struct {
	ID         string         `json:"id"`
	Parameters parametersJSON `json:"parameters"`
	Inputs     []inputJSON    `json:"inputs"`
	Outputs    []outputJSON   `json:"outputs"`
}

type parametersJSON struct {
	BinaryDataSize   *int64 `json:"binary_data_size"`
	BinaryData       *bool  `json:"binary_data"`
	BinaryDataOutput *bool  `json:"binary_data_output"`
}

type inputJSON struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters parametersJSON `json:"parameters"`
	Data       jsontext.Value `json:"data"`
}

type outputJSON struct {
	Name       string         `json:"name"`
	Parameters parametersJSON `json:"parameters"`
}

// Header values shared by every response; len == cap, so an Add elsewhere
// copies instead of writing into them.
var (
	applicationJSON = []string{"application/json"}
	octetStream     = []string{"application/octet-stream"}
)

var (
	bufPool  = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	respPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
)

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > s.opts.MaxBodyBytes {
		s.writeError(w, r, forge.Errorf(forge.TooLarge, "request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, s.opts.MaxBodyBytes))
		return
	}
	body := bufPool.Get().(*bytes.Buffer)
	body.Reset()
	defer func() {
		if body.Cap() <= 1<<20 { // a huge body's buffer is left to the GC
			bufPool.Put(body)
		}
	}()
	if _, err := body.ReadFrom(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.writeError(w, r, forge.Errorf(forge.TooLarge, "request body is larger than the limit of %d bytes", tooBig.Limit))
			return
		}
		s.writeError(w, r, forge.Errorf(forge.Invalid, "read request body: %v", err))
		return
	}
	req, err := decodeInferRequest(body.Bytes(), r.Header.Get(headerLength))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp, err := s.Infer(r.Context(), r.PathValue("name"), r.PathValue("version"), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	bp := respPool.Get().(*[]byte)
	b, jsonLen := encodeInferResponse((*bp)[:0], resp)
	// Headers are set as shared one-value slices, and Content-Length only
	// for a body net/http does not buffer whole (it counts a buffered one
	// itself): Header.Set's work was 2% of a single-row request's CPU.
	h := w.Header()
	if jsonLen < len(b) {
		h["Content-Type"] = octetStream
		h[headerLength] = []string{strconv.Itoa(jsonLen)}
	} else {
		h["Content-Type"] = applicationJSON
	}
	if len(b) > 2048 { // net/http's buffer before it chunks
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	if cap(b) <= 1<<20 { // a huge response's buffer is left to the GC
		*bp = b
	}
	respPool.Put(bp)
}

// decodeInferRequest splits a body into its JSON header and binary tail (per
// the Inference-Header-Content-Length header, if any) and decodes both.
func decodeInferRequest(body []byte, hlen string) (*Request, error) {
	header, tail := body, []byte(nil)
	if hlen != "" {
		n, err := strconv.Atoi(hlen)
		if err != nil || n < 0 {
			return nil, forge.Errorf(forge.Invalid, "%s %q is not a byte count", headerLength, hlen)
		}
		if n > len(body) {
			return nil, forge.Errorf(forge.Invalid, "%s is %d but the body has only %d bytes", headerLength, n, len(body))
		}
		header, tail = body[:n], body[n:]
	}
	// The common header takes the fast path (fastjson.go); the rest, and
	// every error, goes through encoding/json/v2, which decodes in half
	// the time of encoding/json. Names match exactly, as in Triton.
	rj, ok := fastHeader(header)
	if !ok {
		if err := jsonv2.Unmarshal(header, &rj); err != nil {
			return nil, decodeError(err)
		}
	}
	req := &Request{ID: rj.ID, Inputs: make([]forge.Tensor, len(rj.Inputs))}
	if p := rj.Parameters.BinaryDataOutput; p != nil {
		req.BinaryOutput = *p
	}
	off := 0
	for i, in := range rj.Inputs {
		if in.Name == "" {
			return nil, forge.Errorf(forge.Invalid, "input %d has no name", i)
		}
		if !knownDatatype(in.Datatype) {
			return nil, forge.Errorf(forge.Invalid, "input %q has datatype %q; Forge takes FP32, FP64, INT8-64, UINT8-64, BOOL and BYTES", in.Name, in.Datatype)
		}
		n, ok := elements(in.Shape)
		if !ok || in.Shape == nil {
			return nil, forge.Errorf(forge.Invalid, "input %q has shape %s; give non-negative dimensions", in.Name, shapeString(in.Shape))
		}
		var data any
		var err error
		if size := in.Parameters.BinaryDataSize; size != nil {
			if *size < 0 || int64(off)+*size > int64(len(tail)) {
				return nil, forge.Errorf(forge.Invalid, "input %q: binary_data_size %d overruns the %d bytes of binary data after the JSON header", in.Name, *size, len(tail)-off)
			}
			if len(in.Data) > 0 {
				return nil, forge.Errorf(forge.Invalid, "input %q has both binary_data_size and data", in.Name)
			}
			data, err = decodeBinary(in.Name, in.Datatype, n, tail[off:off+int(*size)])
			off += int(*size)
		} else {
			if len(in.Data) == 0 {
				return nil, forge.Errorf(forge.Invalid, "input %q has no data", in.Name)
			}
			if in.Data[0] != '[' {
				return nil, forge.Errorf(forge.Invalid, "input %q: data must be a JSON array", in.Name)
			}
			data, err = parseJSONData(in.Name, in.Datatype, n, in.Data)
		}
		if err != nil {
			return nil, err
		}
		req.Inputs[i] = forge.Tensor{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape, Data: data}
	}
	if off != len(tail) {
		return nil, forge.Errorf(forge.Invalid, "the inputs' binary_data_size add up to %d bytes, but %d bytes follow the JSON header", off, len(tail))
	}
	for _, o := range rj.Outputs {
		req.Outputs = append(req.Outputs, OutputRequest{Name: o.Name, Binary: o.Parameters.BinaryData})
	}
	return req, nil
}

func decodeError(err error) error {
	var semErr *jsonv2.SemanticError
	var synErr *jsontext.SyntacticError
	switch {
	case errors.As(err, &synErr):
		return forge.Errorf(forge.Invalid, "malformed JSON at byte %d: %v", synErr.ByteOffset, synErr.Err)
	case errors.As(err, &semErr) && semErr.GoType != nil:
		return forge.Errorf(forge.Invalid, "malformed request: %s must be a JSON %s, not %s", fieldPath(semErr.JSONPointer), jsonKind(semErr.GoType), kindName(semErr.JSONKind))
	}
	return forge.Errorf(forge.Invalid, "malformed JSON: %v", err)
}

// fieldPath writes a JSON pointer as a request field: /inputs/0/name is
// inputs[0].name.
func fieldPath(p jsontext.Pointer) string {
	var b strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	if b.Len() == 0 {
		return "the body"
	}
	return b.String()
}

// kindName names what the request held.
func kindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "something else"
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "number"
}

// encodeInferResponse appends the response to b: JSON, then the binary data
// of the outputs sent in binary form. It returns the bytes and the length
// of the JSON part.
func encodeInferResponse(b []byte, resp *Response) ([]byte, int) {
	b = append(b, `{"model_name":`...)
	b = appendJSONString(b, resp.Model)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, resp.Version)
	if resp.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, resp.ID)
	}
	b = append(b, `,"outputs":[`...)
	anyBinary := false
	for i, o := range resp.Outputs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, o.Name)
		b = append(b, `,"datatype":`...)
		b = appendJSONString(b, o.Datatype)
		b = append(b, `,"shape":`...)
		b = appendShape(b, o.Shape)
		if resp.Binary[i] {
			anyBinary = true
			b = append(b, `,"parameters":{"binary_data_size":`...)
			b = strconv.AppendInt(b, int64(binarySize(o.Data)), 10)
			b = append(b, "}}"...)
			continue
		}
		b = append(b, `,"data":`...)
		b = appendJSONData(b, o.Data)
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	n := len(b)
	if anyBinary {
		for i, o := range resp.Outputs {
			if resp.Binary[i] {
				b = appendBinary(b, o.Data)
			}
		}
	}
	return b, n
}

// writeError renders err as {"error": "..."} with the status of its kind
// (httpapi's table); internal errors are logged and shown without their cause.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := forge.KindOf(err)
	if kind == forge.Internal {
		s.log.ErrorContext(r.Context(), "inference request failed", "path", r.URL.Path, "request_id", httpapi.RequestID(r.Context()), "err", err)
	}
	if kind == forge.Unavailable {
		// Loading, not ready, being replaced: all pass within seconds.
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, httpapi.Render(kind).Status, map[string]string{"error": httpapi.ClientMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
