package serve

import (
	"context"
	"fmt"
	"strings"

	"github.com/forge-mlops/forge"
)

// ScoreRows runs version ver of name (a deployment's route or a model) on
// rows of numbers laid out as the payload log lays out a request's inputs
// (the signature's inputs in order, each row's elements of one input
// together), in batches, without logging them as payloads. It returns the
// outputs as the payload log names and lays them out: one row per input
// row, columns out_NAME_J (out_NAME when a row has one element). The
// monitor computes a model's outputs on its reference with it, to compare
// the logged outputs with.
func (s *Server) ScoreRows(ctx context.Context, name, ver string, rows [][]float64) ([]string, [][]any, error) {
	v, _, err := s.acquire(name, ver)
	if err != nil {
		return nil, nil, err
	}
	defer v.release()
	per := make([]int, len(v.sig.Inputs))
	width := 0
	for i, t := range v.sig.Inputs {
		n, ok := elements(t.Shape[min(1, len(t.Shape)):])
		if len(t.Shape) == 0 || !ok || t.Datatype == "BYTES" || elemSize[t.Datatype] == 0 {
			return nil, nil, forge.Errorf(forge.Invalid, "model %s version %s: input %q (%s %s) is not numbers of a fixed size per row", v.name, v.version, t.Name, t.Datatype, shapeString(t.Shape))
		}
		per[i], width = n, width+n
	}
	const batch = 4096
	var cols []string
	out := make([][]any, 0, len(rows))
	for lo := 0; lo < len(rows); lo += batch {
		part := rows[lo:min(lo+batch, len(rows))]
		ins := make([]forge.Tensor, len(v.sig.Inputs))
		off := 0
		for i, t := range v.sig.Inputs {
			vals := make([]float64, 0, len(part)*per[i])
			for r, row := range part {
				if len(row) != width {
					return nil, nil, forge.Errorf(forge.Invalid, "row %d has %d values, model %s version %s takes %d", lo+r, len(row), v.name, v.version, width)
				}
				vals = append(vals, row[off:off+per[i]]...)
			}
			shape := append([]int64{int64(len(part))}, t.Shape[1:]...)
			ins[i] = forge.Tensor{Name: t.Name, Datatype: t.Datatype, Shape: shape, Data: numbersAs(t.Datatype, vals)}
			off += per[i]
		}
		resp, _, _, err := s.run(ctx, v, &Request{Inputs: ins})
		if err != nil {
			return nil, nil, err
		}
		got := flatten(payload{outputs: resp.Outputs})
		if len(got) != len(part) {
			return nil, nil, fmt.Errorf("model %s version %s returned %d rows for %d", v.name, v.version, len(got), len(part))
		}
		for _, fields := range got {
			row := make([]any, 0, len(fields))
			var names []string
			for _, f := range fields {
				if strings.HasPrefix(f.name, "out_") {
					row = append(row, f.value)
					names = append(names, f.name)
				}
			}
			if cols == nil {
				cols = names
			}
			out = append(out, row)
		}
	}
	return cols, out, nil
}

// numbersAs converts vals to the slice type of datatype dt (a number type).
func numbersAs(dt string, vals []float64) any {
	d := makeData(dt, len(vals))
	for i, x := range vals {
		switch s := d.(type) {
		case []float32:
			s[i] = float32(x)
		case []float64:
			s[i] = x
		case []int8:
			s[i] = int8(x)
		case []int16:
			s[i] = int16(x)
		case []int32:
			s[i] = int32(x)
		case []int64:
			s[i] = int64(x)
		case []uint8:
			s[i] = uint8(x)
		case []uint16:
			s[i] = uint16(x)
		case []uint32:
			s[i] = uint32(x)
		case []uint64:
			s[i] = uint64(x)
		case []bool:
			s[i] = x != 0
		}
	}
	return d
}
