package process

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/forge-mlops/forge"
)

// tensorJSON is a tensor in the protocol's JSON form.
type tensorJSON struct {
	Name     string          `json:"name"`
	Datatype string          `json:"datatype"`
	Shape    []int64         `json:"shape"`
	Data     json.RawMessage `json:"data,omitempty"`
}

type specJSON struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// metadata reads the predictor's signature from its model metadata.
func (p *predictor) metadata(ctx context.Context) (forge.Signature, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", p.modelURL(p.url(), ""), nil)
	var md struct {
		Inputs, Outputs []specJSON
	}
	if err := p.do(req, &md); err != nil {
		return forge.Signature{}, fmt.Errorf("read the predictor's model metadata: %w", err)
	}
	if len(md.Inputs) == 0 || len(md.Outputs) == 0 {
		return forge.Signature{}, forge.Errorf(forge.Invalid, "predictor of model %s version %s lists no inputs or no outputs in its model metadata (GET /v2/models/%s)", p.name, p.version, p.man.Model)
	}
	var sig forge.Signature
	for _, t := range md.Inputs {
		sig.Inputs = append(sig.Inputs, forge.TensorSpec(t))
	}
	for _, t := range md.Outputs {
		sig.Outputs = append(sig.Outputs, forge.TensorSpec(t))
	}
	return sig, nil
}

// Signature is what the predictor's model metadata declared.
func (p *predictor) Signature() forge.Signature { return p.sig }

// Infer forwards the inputs to the predictor and returns its outputs in
// signature order. While the predictor restarts it is Unavailable.
func (p *predictor) Infer(ctx context.Context, inputs []forge.Tensor) ([]forge.Tensor, error) {
	base := p.url()
	if base == "" {
		return nil, forge.Errorf(forge.Unavailable, "model %s version %s: %v; retry", p.name, p.version, errDown)
	}
	// The predictor is the user's code and may not check; the contract
	// says inputs that break the signature are Invalid, whoever runs them.
	if err := p.sig.CheckInputs(inputs); err != nil {
		return nil, err
	}
	body, err := encode(inputs)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", p.modelURL(base, "/infer"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	var resp struct{ Outputs []tensorJSON }
	if err := p.do(req, &resp); err != nil {
		return nil, err
	}
	byName := make(map[string]tensorJSON, len(resp.Outputs))
	for _, o := range resp.Outputs {
		byName[o.Name] = o
	}
	outs := make([]forge.Tensor, len(p.sig.Outputs))
	for i, spec := range p.sig.Outputs {
		o, ok := byName[spec.Name]
		if !ok {
			return nil, fmt.Errorf("predictor of model %s version %s left out output %q", p.name, p.version, spec.Name)
		}
		data, err := decodeData(o.Datatype, o.Data)
		if err != nil {
			return nil, fmt.Errorf("predictor of model %s version %s sent output %q: %w", p.name, p.version, spec.Name, err)
		}
		outs[i] = forge.Tensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape, Data: data}
	}
	return outs, nil
}

// do sends req and decodes a 200 answer into out; the predictor's errors
// keep their meaning (400: the input, 503: not now), and a predictor that
// cannot be reached is Unavailable, as it is while it restarts.
func (p *predictor) do(req *http.Request, out any) error {
	resp, err := p.client.Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return req.Context().Err()
		}
		return forge.WrapError(forge.Unavailable, err, "model %s version %s: predictor unreachable; retry", p.name, p.version)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return forge.WrapError(forge.Unavailable, err, "model %s version %s: read the predictor's answer", p.name, p.version)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		msg := string(b)
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		kind := forge.Internal
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable:
			kind = forge.Unavailable
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			kind = forge.Invalid
		}
		return forge.Errorf(kind, "predictor of model %s version %s answered %d: %s", p.name, p.version, resp.StatusCode, msg)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the predictor's answer: %w", err)
	}
	return nil
}

// encode writes the request body. UINT8 data is written as numbers, not
// as the base64 string encoding/json makes of a []byte.
func encode(inputs []forge.Tensor) ([]byte, error) {
	req := struct {
		Inputs []tensorJSON `json:"inputs"`
	}{Inputs: make([]tensorJSON, len(inputs))}
	for i, in := range inputs {
		data := in.Data
		if u, ok := data.([]uint8); ok {
			w := make([]uint16, len(u))
			for j, x := range u {
				w[j] = uint16(x)
			}
			data = w
		}
		b, err := json.Marshal(data)
		if err != nil {
			return nil, forge.WrapError(forge.Invalid, err, "input %q cannot be sent as JSON", in.Name)
		}
		req.Inputs[i] = tensorJSON{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape, Data: b}
	}
	return json.Marshal(req)
}

// decodeData reads flat or nested JSON data into the Go slice the datatype
// calls for.
func decodeData(datatype string, raw json.RawMessage) (any, error) {
	switch datatype {
	case "FP32":
		return flat[float32](raw)
	case "FP64":
		return flat[float64](raw)
	case "INT8":
		return flat[int8](raw)
	case "INT16":
		return flat[int16](raw)
	case "INT32":
		return flat[int32](raw)
	case "INT64":
		return flat[int64](raw)
	case "UINT8":
		v, err := flat[uint16](raw)
		if err != nil {
			return nil, err
		}
		u := make([]uint8, len(v))
		for i, x := range v {
			if x > 255 {
				return nil, fmt.Errorf("UINT8 value %d out of range", x)
			}
			u[i] = uint8(x)
		}
		return u, nil
	case "UINT16":
		return flat[uint16](raw)
	case "UINT32":
		return flat[uint32](raw)
	case "UINT64":
		return flat[uint64](raw)
	case "BOOL":
		return flat[bool](raw)
	case "BYTES":
		return flat[string](raw)
	}
	return nil, fmt.Errorf("unknown datatype %q", datatype)
}

// flat decodes a flat array directly and a nested one element by element.
func flat[T any](raw json.RawMessage) ([]T, error) {
	var out []T
	if err := json.Unmarshal(raw, &out); err == nil {
		return out, nil
	}
	var walk func(json.RawMessage) error
	walk = func(r json.RawMessage) error {
		r = bytes.TrimSpace(r)
		if len(r) > 0 && r[0] == '[' {
			var items []json.RawMessage
			if err := json.Unmarshal(r, &items); err != nil {
				return err
			}
			for _, it := range items {
				if err := walk(it); err != nil {
					return err
				}
			}
			return nil
		}
		var x T
		if err := json.Unmarshal(r, &x); err != nil {
			return err
		}
		out = append(out, x)
		return nil
	}
	out = out[:0]
	if err := walk(raw); err != nil {
		return nil, err
	}
	return out, nil
}

var _ forge.Model = (*predictor)(nil)
