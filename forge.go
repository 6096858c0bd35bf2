// Package forge holds Forge's domain types, its error kinds, and the contracts
// that have several implementations (BlobStore, and later Executor and Runtime).
// It imports the standard library only, so every other package can depend on it.
package forge

import (
	"errors"
	"fmt"
)

// Kind classifies an error so the edge (HTTP, gRPC, CLI) can map it to a
// status without knowing where it came from.
type Kind int

const (
	Internal      Kind = iota // a bug or an unexpected failure; the cause is logged, not shown
	Invalid                   // the request is malformed or breaks a rule
	NotFound                  // the named thing does not exist
	AlreadyExists             // creating something whose name is taken
	Conflict                  // the state does not allow the operation now
	Unauthorized              // no or unknown credentials
	Forbidden                 // credentials known but not allowed (e.g. revoked)
	Unavailable               // try again later: overloaded, not ready, shutting down
	TooLarge                  // the request body is over the limit
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case AlreadyExists:
		return "already exists"
	case Conflict:
		return "conflict"
	case Unauthorized:
		return "unauthorized"
	case Forbidden:
		return "forbidden"
	case Unavailable:
		return "unavailable"
	case TooLarge:
		return "too large"
	}
	return "internal"
}

// Error is an error with a kind and a message that is safe to show a client.
// Err, when set, is the underlying cause: it is logged, never sent.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg != "" {
		return e.Msg + ": " + e.Err.Error()
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind with a client-visible message.
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// WrapError marks cause with a kind and a client-visible message.
func WrapError(kind Kind, cause error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Message returns the client-visible message of err: the Msg of the first
// *Error in its chain, or a generic text for errors of unknown kind.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Msg != "" {
		return e.Msg
	}
	return "internal error"
}

// IsKind reports whether err is an *Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}
