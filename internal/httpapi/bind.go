package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// Bind fills v (a pointer to a struct with json tags) from the request: the
// JSON body, or for GET the query string the way MLflow clients send it:
// every value a string, a repeated key (or a slice field) a list. Fields'
// types decode strings themselves where needed (see api.Int64).
func Bind(r *http.Request, v any) error {
	if r.Method != http.MethodGet {
		return Decode(r, v)
	}
	q := r.URL.Query()
	m := map[string]any{}
	t := reflect.TypeOf(v).Elem()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		vals, ok := q[name]
		if !ok {
			// PHP-style repeated keys ("run_ids[]=...") are sent by some clients.
			vals, ok = q[name+"[]"]
		}
		if !ok {
			continue
		}
		if f.Type.Kind() == reflect.Slice {
			m[name] = vals
		} else {
			m[name] = vals[len(vals)-1]
		}
	}
	b, _ := json.Marshal(m)
	if err := json.Unmarshal(b, v); err != nil {
		return DecodeError(err)
	}
	return nil
}

// ParamType is the type check MLflow's server applies to a request field.
type ParamType int

const (
	AnyType ParamType = iota
	StringType
	IntType   // a number, or a string holding an integer
	FloatType // a number, or a string holding one
	BoolType
	ArrayType
)

// Param is a field of an MLflow request and MLflow's checks on it.
type Param struct {
	Name     string
	Type     ParamType
	Required bool
}

// BindChecked is Bind for MLflow's routes: it reports what MLflow's server
// reports, in its words and its order. Fields are checked in the order
// given (MLflow's schema order): a required one missing or empty is
// "Missing value for required parameter"; when the body does not decode,
// the first field of the wrong type is "Invalid value ... supplied", so a
// missing run_id is told before a bad datasets. A run_id may come as
// run_uuid, as MLflow accepts.
func BindChecked(r *http.Request, v any, params ...Param) error {
	if r.Method == http.MethodGet {
		if err := Bind(r, v); err != nil {
			return err
		}
		return checkRequired(v, params)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return DecodeError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return checkRequired(v, params)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err = dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return DecodeError(errors.New("unexpected data after the JSON object"))
		}
		return checkRequired(v, params)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return DecodeError(err)
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&m) != nil {
		return DecodeError(err)
	}
	for _, p := range params {
		val, present := m[p.Name]
		if !present && p.Name == "run_id" {
			val, present = m["run_uuid"]
		}
		if !present && !p.Required {
			continue
		}
		if p.Required && (val == nil || val == "") {
			return MissingParam(p.Name)
		}
		if !typeOK(p.Type, val) {
			return InvalidParam(p.Name, pyRepr(val, true), pyType(val))
		}
	}
	return DecodeError(err)
}

func typeOK(t ParamType, v any) bool {
	switch t {
	case StringType:
		_, ok := v.(string)
		return ok
	case IntType, FloatType:
		switch x := v.(type) {
		case json.Number, bool:
			return true
		case string:
			if t == IntType {
				_, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
				return err == nil
			}
			_, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			return err == nil
		}
		return false
	case BoolType:
		_, ok := v.(bool)
		return ok
	case ArrayType:
		_, ok := v.([]any)
		return ok
	}
	return true
}

// pyType is Python's name for the type of a decoded JSON value.
func pyType(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case string:
		return "str"
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			return "float"
		}
		return "int"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return "object"
}

// checkRequired reports the first required field of v (by json name) that
// is empty: "" or nil.
func checkRequired(v any, params []Param) error {
	rv := reflect.ValueOf(v).Elem()
	t := rv.Type()
	field := func(name string) (reflect.Value, bool) {
		for i := 0; i < t.NumField(); i++ {
			if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); n == name {
				return rv.Field(i), true
			}
		}
		return reflect.Value{}, false
	}
	empty := func(name string) bool {
		f, ok := field(name)
		if !ok {
			return false
		}
		switch f.Kind() {
		case reflect.String:
			return f.String() == ""
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			return f.IsNil()
		}
		return false
	}
	for _, p := range params {
		if p.Required && empty(p.Name) && (p.Name != "run_id" || empty("run_uuid")) {
			return MissingParam(p.Name)
		}
	}
	return nil
}
