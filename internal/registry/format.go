package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/forge-mlops/forge"
	"github.com/forge-mlops/forge/internal/onnx"
	"github.com/forge-mlops/forge/internal/xgboost"
)

// detect finds the model file of a new version and validates it: the
// format asked for, or else the one the files reveal (an .onnx file, or a
// .json file that is an XGBoost model). It returns format other, with no
// signature, when nothing claims a format Forge serves natively.
func (r *Registry) detect(ctx context.Context, format string, files []candidate) (string, string, *Signature, error) {
	if format == FormatOther || len(files) == 0 {
		if format != "" && format != FormatOther {
			return "", "", nil, forge.Errorf(forge.Invalid, "format %s needs a model file, and the version has no files", format)
		}
		return FormatOther, "", nil, nil
	}
	var onnxFiles, jsonFiles, xgbFiles []candidate
	jsonBytes := map[string][]byte{}
	for _, f := range files {
		switch strings.ToLower(path.Ext(f.Path)) {
		case ".onnx":
			onnxFiles = append(onnxFiles, f)
		case ".json":
			jsonFiles = append(jsonFiles, f)
			b, err := r.read(ctx, f)
			if err != nil {
				return "", "", nil, err
			}
			if looksLikeXGBoost(b) {
				xgbFiles = append(xgbFiles, f)
				jsonBytes[f.Path] = b
			}
		}
	}
	// With a format given, a lone file is the model whatever its name.
	if format == FormatONNX && len(onnxFiles) == 0 && len(files) == 1 {
		onnxFiles = files
	}
	if format == FormatXGBoost && len(xgbFiles) == 0 {
		xgbFiles = jsonFiles
		if len(xgbFiles) == 0 && len(files) == 1 {
			xgbFiles = files
		}
	}
	if format == "" {
		switch {
		case len(onnxFiles) > 0:
			format = FormatONNX
		case len(xgbFiles) > 0:
			format = FormatXGBoost
		default:
			return FormatOther, "", nil, nil
		}
	}
	pick := onnxFiles
	if format == FormatXGBoost {
		pick = xgbFiles
	}
	switch len(pick) {
	case 0:
		return "", "", nil, forge.Errorf(forge.Invalid, "format %s: no %s model file among the %d files given", format, format, len(files))
	case 1:
	default:
		names := make([]string, len(pick))
		for i, f := range pick {
			names[i] = f.Path
		}
		return "", "", nil, forge.Errorf(forge.Invalid, "format %s: more than one model file (%s); register one model per version", format, strings.Join(names, ", "))
	}
	f := pick[0]
	b, ok := jsonBytes[f.Path]
	if !ok {
		var err error
		if b, err = r.read(ctx, f); err != nil {
			return "", "", nil, err
		}
	}
	var sig *Signature
	var err error
	if format == FormatONNX {
		sig, err = onnxSignature(b)
	} else {
		sig, err = xgboostSignature(b)
	}
	if err != nil {
		if format == FormatONNX { // the parser's message says what it is
			return "", "", nil, forge.WrapError(forge.Invalid, err, "%s: %s", f.Path, err.Error())
		}
		return "", "", nil, forge.WrapError(forge.Invalid, err, "%s is not a valid XGBoost JSON model: %s", f.Path, err.Error())
	}
	return format, f.Path, sig, nil
}

// looksLikeXGBoost reports whether a JSON file claims to be an XGBoost
// model, even a truncated one: save_model writes the "learner" object first.
func looksLikeXGBoost(b []byte) bool {
	head := bytes.TrimLeft(b[:min(len(b), 64<<10)], " \t\r\n")
	return len(head) > 0 && head[0] == '{' && bytes.Contains(head, []byte(`"learner"`))
}

// read returns a candidate's content, from its spooled upload or its blob.
func (r *Registry) read(ctx context.Context, f candidate) ([]byte, error) {
	if f.local != "" {
		b, err := os.ReadFile(f.local)
		if err != nil {
			return nil, fmt.Errorf("read upload %s: %w", f.Path, err)
		}
		return b, nil
	}
	rc, err := r.blobs.Open(ctx, f.Digest)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return b, nil
}

func onnxSignature(b []byte) (*Signature, error) {
	s, err := onnx.ParseSignature(b)
	if err != nil {
		return nil, err
	}
	conv := func(ts []onnx.Tensor) []Tensor {
		out := make([]Tensor, len(ts))
		for i, t := range ts {
			out[i] = Tensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
		}
		return out
	}
	return &Signature{
		Inputs:  conv(s.Inputs),
		Outputs: conv(s.Outputs),
		ONNX:    &ONNXInfo{IRVersion: s.IRVersion, Opset: s.Opset, Producer: s.Producer},
	}, nil
}

// xgboostSignature describes a tree model as Triton's FIL backend does: one
// FP32 input of [batch, features] and one FP32 output per row, or one per
// class for multi:softprob.
func xgboostSignature(b []byte) (*Signature, error) {
	m, err := xgboost.Load(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	info := m.Info()
	out := []int64{-1}
	if n := m.OutputsPerRow(); n > 1 {
		out = []int64{-1, int64(n)}
	}
	return &Signature{
		Inputs:  []Tensor{{Name: xgboost.InputName, Datatype: "FP32", Shape: []int64{-1, int64(info.NumFeature)}}},
		Outputs: []Tensor{{Name: xgboost.OutputName, Datatype: "FP32", Shape: out}},
		XGBoost: &XGBoostInfo{
			Objective:   info.Objective,
			NumFeatures: info.NumFeature,
			NumClasses:  info.NumClass,
			NumTrees:    info.NumTrees,
			Version:     info.Version,
		},
	}, nil
}
