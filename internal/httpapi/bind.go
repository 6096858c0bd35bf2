package httpapi

import (
	"encoding/json"
	"net/http"
	"reflect"
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
