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
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/forge-mlops/forge"
)

// ErrorBody is the JSON shape of an error, as MLflow's server writes it.
type ErrorBody struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// Rendering is how the edge shows an error kind: its HTTP status, its
// MLflow error code (in MLflow and Forge JSON errors) and its gRPC code.
type Rendering struct {
	Status int
	MLflow string
	GRPC   codes.Code
	// MLflowStatus is the HTTP status MLflow's own server gives this error
	// code, where it differs from Status: MLflow answers 400 for
	// RESOURCE_ALREADY_EXISTS, and MLflow clients expect it on MLflow's
	// routes; Forge's own API says 409.
	MLflowStatus int
}

// kinds is the one table of error kinds at the edge; REST (MLflow, Forge
// and Open Inference Protocol JSON) and gRPC all read it.
var kinds = map[forge.Kind]Rendering{
	forge.Invalid:       {http.StatusBadRequest, "INVALID_PARAMETER_VALUE", codes.InvalidArgument, 0},
	forge.NotFound:      {http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", codes.NotFound, 0},
	forge.AlreadyExists: {http.StatusConflict, "RESOURCE_ALREADY_EXISTS", codes.AlreadyExists, http.StatusBadRequest},
	forge.Conflict:      {http.StatusConflict, "RESOURCE_CONFLICT", codes.FailedPrecondition, 0},
	forge.Unauthorized:  {http.StatusUnauthorized, "UNAUTHENTICATED", codes.Unauthenticated, 0},
	forge.Forbidden:     {http.StatusForbidden, "PERMISSION_DENIED", codes.PermissionDenied, 0},
	forge.Unavailable:   {http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE", codes.Unavailable, 0},
	forge.TooLarge:      {http.StatusRequestEntityTooLarge, "REQUEST_LIMIT_EXCEEDED", codes.ResourceExhausted, 0},
	forge.Internal:      {http.StatusInternalServerError, "INTERNAL_ERROR", codes.Internal, 0},
}

// Render is the row of kinds for k; an unknown kind renders as Internal.
func Render(k forge.Kind) Rendering {
	if r, ok := kinds[k]; ok {
		return r
	}
	return kinds[forge.Internal]
}

// Status returns the HTTP status and MLflow error code for an error kind.
func Status(k forge.Kind) (int, string) {
	r := Render(k)
	return r.Status, r.MLflow
}

// IsMLflowPath says whether path is one of MLflow's REST routes (the
// tracking and registry API, its /ajax-api twin, the artifact proxy), whose
// errors keep the statuses MLflow's server gives.
func IsMLflowPath(path string) bool {
	for _, p := range []string{"/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// ClientMessage is what a client may see of err: its message, or for an
// internal error only a generic text (the cause is for the log).
func ClientMessage(err error) string {
	if forge.KindOf(err) == forge.Internal {
		return "internal error"
	}
	return forge.Message(err)
}

// WriteError renders err for the client and logs its cause. Internal errors
// show only a generic message and the request id to quote.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, ErrClientGone) || r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away: not a server fault, and nobody reads the answer.
		log.DebugContext(r.Context(), "request cancelled by the client", "path", r.URL.Path, "request_id", RequestID(r.Context()))
		w.WriteHeader(499) // nginx's "client closed request", for the access log
		return
	}
	kind := forge.KindOf(err)
	status, code := Status(kind)
	if rd := Render(kind); rd.MLflowStatus != 0 && IsMLflowPath(r.URL.Path) {
		status = rd.MLflowStatus
	}
	if kind == forge.Unavailable {
		w.Header().Set("Retry-After", "1") // busy, loading, starting: short-lived
	}
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
