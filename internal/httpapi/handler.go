package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/forge-mlops/forge"
)

// HandlerFunc handles a request and returns the value to send as JSON, or an
// error to render. A nil value is sent as {}.
type HandlerFunc func(r *http.Request) (any, error)

// JSON adapts a HandlerFunc to http.Handler.
func JSON(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := h(r)
		if err != nil {
			WriteError(w, r, log, err)
			return
		}
		if v == nil {
			v = struct{}{}
		}
		WriteJSON(w, http.StatusOK, v)
	})
}

// Decode reads the JSON body into v. Malformed JSON, a wrong type or
// trailing data is an Invalid error that says what is wrong; a body over the
// limit is TooLarge. An empty body decodes as {}.
func Decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err == nil {
		// Token, not More: More says false for a stray "}" or "]".
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON object")
		}
	}
	return DecodeError(err)
}

// DecodeError classifies an error from decoding a request body.
func DecodeError(err error) error {
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &tooBig):
		return forge.Errorf(forge.TooLarge, "request body is larger than %d bytes", tooBig.Limit)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return forge.Errorf(forge.Invalid, "invalid value for %s: expected %s, got JSON %s", field, jsonType(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return forge.Errorf(forge.Invalid, "malformed JSON at byte %d: %s", syntaxErr.Offset, syntaxErr.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return forge.Errorf(forge.Invalid, "malformed JSON: unexpected end of body")
	}
	return forge.Errorf(forge.Invalid, "malformed JSON: %s", err.Error())
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"):
		return "an object"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.Contains(goType, "int"), strings.Contains(goType, "float"), goType == "json.Number":
		return "a number"
	}
	return fmt.Sprintf("a %s", goType)
}
