// Package onnx reads what Forge needs to know about an ONNX model without
// running it: the names, element types and shapes of its inputs and outputs,
// and the versions it was written with.
//
// It decodes the protobuf wire format by hand rather than through generated
// code, because only a handful of fields matter and the rest of a model (its
// nodes and weights, often hundreds of megabytes) must be skipped cheaply.
// Field numbers are those of onnx/onnx.proto.
package onnx

import (
	"fmt"
	"unicode/utf8"

	"github.com/forge-mlops/forge"
	"google.golang.org/protobuf/encoding/protowire"
)

// Tensor describes one input or output of a model.
type Tensor struct {
	Name string
	// Datatype is the Open Inference Protocol name of the element type:
	// FP32, FP64, FP16, INT8..INT64, UINT8..UINT64, BOOL, or BYTES for strings.
	Datatype string
	// Shape has -1 for a dimension that is dynamic or unknown. It is nil when
	// the model does not declare the rank at all, and empty for a scalar.
	Shape []int64
}

// Signature is the interface of a model as its graph declares it.
type Signature struct {
	Inputs  []Tensor
	Outputs []Tensor
	// IRVersion is the ONNX IR version of the file.
	IRVersion int64
	// Opset is the version of the default operator set (domain "" or "ai.onnx").
	Opset    int64
	Producer string
}

// Field numbers from onnx.proto.
const (
	modelIRVersion    = 1
	modelProducerName = 2
	modelGraph        = 7
	modelOpsetImport  = 8

	opsetDomain  = 1
	opsetVersion = 2

	graphInitializer       = 5
	graphInput             = 11
	graphOutput            = 12
	graphSparseInitializer = 15

	valueInfoName = 1
	valueInfoType = 2

	typeTensor = 1

	tensorTypeElemType = 1
	tensorTypeShape    = 2

	shapeDim = 1

	dimValue = 1
	dimParam = 2

	tensorProtoName = 8

	sparseTensorValues = 1
)

// datatypes maps TensorProto.DataType to Open Inference Protocol names.
// Types the protocol cannot carry (complex, bfloat16, float8, int4) are absent.
var datatypes = map[uint64]string{
	1:  "FP32",
	2:  "UINT8",
	3:  "INT8",
	4:  "UINT16",
	5:  "INT16",
	6:  "INT32",
	7:  "INT64",
	8:  "BYTES",
	9:  "BOOL",
	10: "FP16",
	11: "FP64",
	12: "UINT32",
	13: "UINT64",
}

// onnxTypeNames names the element types that have no protocol name, so the
// error says which one the model uses.
var onnxTypeNames = map[uint64]string{
	0:  "UNDEFINED",
	14: "COMPLEX64",
	15: "COMPLEX128",
	16: "BFLOAT16",
	17: "FLOAT8E4M3FN",
	18: "FLOAT8E4M3FNUZ",
	19: "FLOAT8E5M2",
	20: "FLOAT8E5M2FNUZ",
	21: "UINT4",
	22: "INT4",
}

// ParseSignature reads the signature of the ONNX model in b. Graph inputs that
// are also initializers are weights with defaults, not inputs a caller feeds,
// so they are left out. Bytes that are not an ONNX model give a forge.Invalid
// error.
func ParseSignature(b []byte) (Signature, error) {
	if len(b) == 0 {
		return Signature{}, invalid("the file is empty")
	}
	var (
		sig      Signature
		graph    []byte
		hasGraph bool
	)
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case modelIRVersion:
			if typ != protowire.VarintType {
				return wireTypeError("ModelProto.ir_version")
			}
			sig.IRVersion = int64(v.varint)
		case modelProducerName:
			if typ != protowire.BytesType {
				return wireTypeError("ModelProto.producer_name")
			}
			s, err := str(v.bytes, "producer name")
			if err != nil {
				return err
			}
			sig.Producer = s
		case modelGraph:
			if typ != protowire.BytesType {
				return wireTypeError("ModelProto.graph")
			}
			// Protobuf merges repeated occurrences of a message field; no
			// exporter writes two graphs, so one is all we accept.
			if hasGraph {
				return invalid("the model has more than one graph")
			}
			graph, hasGraph = v.bytes, true
		case modelOpsetImport:
			if typ != protowire.BytesType {
				return wireTypeError("ModelProto.opset_import")
			}
			domain, version, err := parseOpset(v.bytes)
			if err != nil {
				return err
			}
			if domain == "" || domain == "ai.onnx" {
				sig.Opset = version
			}
		}
		return nil
	})
	if err != nil {
		return Signature{}, err
	}
	// A protobuf parser accepts many byte strings that are not models (every
	// unknown field is skipped), so insist on what every ONNX file has.
	if sig.IRVersion <= 0 {
		return Signature{}, invalid("no IR version (ModelProto.ir_version)")
	}
	if !hasGraph {
		return Signature{}, invalid("no graph (ModelProto.graph)")
	}
	if err := parseGraph(graph, &sig); err != nil {
		return Signature{}, err
	}
	return sig, nil
}

func parseOpset(b []byte) (domain string, version int64, err error) {
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case opsetDomain:
			if typ != protowire.BytesType {
				return wireTypeError("OperatorSetIdProto.domain")
			}
			s, err := str(v.bytes, "operator set domain")
			if err != nil {
				return err
			}
			domain = s
		case opsetVersion:
			if typ != protowire.VarintType {
				return wireTypeError("OperatorSetIdProto.version")
			}
			version = int64(v.varint)
		}
		return nil
	})
	return domain, version, err
}

func parseGraph(b []byte, sig *Signature) error {
	var inputs []Tensor
	initializers := map[string]bool{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case graphInitializer:
			if typ != protowire.BytesType {
				return wireTypeError("GraphProto.initializer")
			}
			name, err := tensorProtoNameOf(v.bytes)
			if err != nil {
				return err
			}
			initializers[name] = true
		case graphSparseInitializer:
			if typ != protowire.BytesType {
				return wireTypeError("GraphProto.sparse_initializer")
			}
			name, err := sparseTensorNameOf(v.bytes)
			if err != nil {
				return err
			}
			initializers[name] = true
		case graphInput, graphOutput:
			if typ != protowire.BytesType {
				return wireTypeError("GraphProto.input or output")
			}
			t, err := parseValueInfo(v.bytes)
			if err != nil {
				return err
			}
			if num == graphInput {
				inputs = append(inputs, t)
			} else {
				sig.Outputs = append(sig.Outputs, t)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, in := range inputs {
		if !initializers[in.Name] {
			sig.Inputs = append(sig.Inputs, in)
		}
	}
	if len(sig.Outputs) == 0 {
		return invalid("the graph declares no outputs")
	}
	if err := checkNames(sig.Inputs, "input"); err != nil {
		return err
	}
	return checkNames(sig.Outputs, "output")
}

func checkNames(ts []Tensor, what string) error {
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		if t.Name == "" {
			return invalid("graph %s %d has no name", what, i)
		}
		if seen[t.Name] {
			return invalid("graph %s %q is declared twice", what, t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

func tensorProtoNameOf(b []byte) (string, error) {
	var name string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v field) error {
		if num != tensorProtoName {
			return nil
		}
		if typ != protowire.BytesType {
			return wireTypeError("TensorProto.name")
		}
		s, err := str(v.bytes, "initializer name")
		name = s
		return err
	})
	return name, err
}

func sparseTensorNameOf(b []byte) (string, error) {
	var name string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v field) error {
		if num != sparseTensorValues {
			return nil
		}
		if typ != protowire.BytesType {
			return wireTypeError("SparseTensorProto.values")
		}
		s, err := tensorProtoNameOf(v.bytes)
		name = s
		return err
	})
	return name, err
}

func parseValueInfo(b []byte) (Tensor, error) {
	var (
		t       Tensor
		typ     []byte
		hasType bool
	)
	err := eachField(b, func(num protowire.Number, wt protowire.Type, v field) error {
		switch num {
		case valueInfoName:
			if wt != protowire.BytesType {
				return wireTypeError("ValueInfoProto.name")
			}
			s, err := str(v.bytes, "tensor name")
			if err != nil {
				return err
			}
			t.Name = s
		case valueInfoType:
			if wt != protowire.BytesType {
				return wireTypeError("ValueInfoProto.type")
			}
			typ, hasType = v.bytes, true
		}
		return nil
	})
	if err != nil {
		return Tensor{}, err
	}
	if !hasType {
		return Tensor{}, invalid("%q has no type", t.Name)
	}
	var (
		tensorType []byte
		isTensor   bool
	)
	err = eachField(typ, func(num protowire.Number, wt protowire.Type, v field) error {
		if num != typeTensor {
			return nil
		}
		if wt != protowire.BytesType {
			return wireTypeError("TypeProto.tensor_type")
		}
		tensorType, isTensor = v.bytes, true
		return nil
	})
	if err != nil {
		return Tensor{}, err
	}
	if !isTensor {
		// Sequences, maps and optionals (scikit-learn's ZipMap output, for
		// one) have no representation in the inference protocol.
		return Tensor{}, invalid("%q is not a tensor; only tensor inputs and outputs are supported", t.Name)
	}
	if err := parseTensorType(tensorType, &t); err != nil {
		return Tensor{}, err
	}
	return t, nil
}

func parseTensorType(b []byte, t *Tensor) error {
	var elem uint64
	err := eachField(b, func(num protowire.Number, wt protowire.Type, v field) error {
		switch num {
		case tensorTypeElemType:
			if wt != protowire.VarintType {
				return wireTypeError("TypeProto.Tensor.elem_type")
			}
			elem = v.varint
		case tensorTypeShape:
			if wt != protowire.BytesType {
				return wireTypeError("TypeProto.Tensor.shape")
			}
			shape, err := parseShape(v.bytes)
			if err != nil {
				return err
			}
			t.Shape = shape
		}
		return nil
	})
	if err != nil {
		return err
	}
	dt, ok := datatypes[elem]
	if !ok {
		name, known := onnxTypeNames[elem]
		if !known {
			name = fmt.Sprintf("element type %d", elem)
		}
		return invalid("%q has element type %s, which the inference protocol cannot carry", t.Name, name)
	}
	t.Datatype = dt
	return nil
}

func parseShape(b []byte) ([]int64, error) {
	// Non-nil even with no dims: a present but empty shape is a scalar.
	shape := []int64{}
	err := eachField(b, func(num protowire.Number, wt protowire.Type, v field) error {
		if num != shapeDim {
			return nil
		}
		if wt != protowire.BytesType {
			return wireTypeError("TensorShapeProto.dim")
		}
		d, err := parseDim(v.bytes)
		if err != nil {
			return err
		}
		shape = append(shape, d)
		return nil
	})
	return shape, err
}

// parseDim returns -1 for a symbolic dimension (dim_param, e.g. "batch") or
// one with no value, as the inference protocol's metadata does.
func parseDim(b []byte) (int64, error) {
	d := int64(-1)
	err := eachField(b, func(num protowire.Number, wt protowire.Type, v field) error {
		switch num {
		case dimValue:
			if wt != protowire.VarintType {
				return wireTypeError("Dimension.dim_value")
			}
			d = int64(v.varint)
			if d < 0 {
				d = -1
			}
		case dimParam:
			if wt != protowire.BytesType {
				return wireTypeError("Dimension.dim_param")
			}
			d = -1
		}
		return nil
	})
	return d, err
}

// field is the decoded value of one protobuf field: varint for VarintType,
// bytes for BytesType. Other wire types are skipped with neither set.
type field struct {
	varint uint64
	bytes  []byte
}

// eachField calls fn for every field of the message encoded in b, in order,
// and rejects anything that is not well-formed protobuf.
func eachField(b []byte, fn func(protowire.Number, protowire.Type, field) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed(protowire.ParseError(n))
		}
		b = b[n:]
		var v field
		switch typ {
		case protowire.VarintType:
			v.varint, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v.bytes, n = protowire.ConsumeBytes(b)
		case protowire.EndGroupType:
			// An end-group tag outside a group: ConsumeFieldValue would accept
			// it as a zero-length value, but no valid message has one here.
			return malformed(fmt.Errorf("unexpected end-group tag for field %d", num))
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return malformed(protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

func str(b []byte, what string) (string, error) {
	if !utf8.Valid(b) {
		return "", invalid("the %s is not valid UTF-8", what)
	}
	return string(b), nil
}

func invalid(format string, args ...any) error {
	return forge.Errorf(forge.Invalid, "not a valid ONNX model: "+format, args...)
}

func malformed(err error) error {
	return invalid("malformed protobuf (%v); is this an ONNX file?", err)
}

func wireTypeError(field string) error {
	return invalid("%s has the wrong wire type; is this an ONNX file?", field)
}
