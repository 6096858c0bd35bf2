// Package httpapi holds the HTTP conventions every Forge API follows: handlers
// that return a value or an error, one place that maps error kinds to status
// codes and MLflow error codes, and the middleware (request id, access log,
// panic recovery, body limit, metrics) composed around the routes.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/forge-mlops/forge"
)

// ErrorBody is the JSON shape of an error, as MLflow's server writes it.
type ErrorBody struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// Status returns the HTTP status and MLflow error code for an error kind.
func Status(k forge.Kind) (int, string) {
	switch k {
	case forge.Invalid:
		return http.StatusBadRequest, "INVALID_PARAMETER_VALUE"
	case forge.NotFound:
		return http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST"
	case forge.AlreadyExists:
		return http.StatusBadRequest, "RESOURCE_ALREADY_EXISTS"
	case forge.Conflict:
		return http.StatusConflict, "RESOURCE_CONFLICT"
	case forge.Unauthorized:
		return http.StatusUnauthorized, "UNAUTHENTICATED"
	case forge.Forbidden:
		return http.StatusForbidden, "PERMISSION_DENIED"
	case forge.Unavailable:
		return http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE"
	case forge.TooLarge:
		return http.StatusRequestEntityTooLarge, "REQUEST_LIMIT_EXCEEDED"
	}
	return http.StatusInternalServerError, "INTERNAL_ERROR"
}

// WriteError renders err for the client and logs its cause. Internal errors
// show only a generic message and the request id to quote.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away: not a server fault, and nobody reads the answer.
		log.DebugContext(r.Context(), "request cancelled by the client", "path", r.URL.Path, "request_id", RequestID(r.Context()))
		w.WriteHeader(499) // nginx's "client closed request", for the access log
		return
	}
	kind := forge.KindOf(err)
	status, code := Status(kind)
	msg := forge.Message(err)
	if kind == forge.Internal {
		msg = "internal error (request id " + RequestID(r.Context()) + ")"
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "request_id", RequestID(r.Context()), "err", err)
	} else {
		log.DebugContext(r.Context(), "request refused", "path", r.URL.Path, "status", status, "err", err)
	}
	WriteJSON(w, status, ErrorBody{ErrorCode: code, Message: msg})
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error_code":"INTERNAL_ERROR","message":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
