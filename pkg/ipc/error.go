package ipc

import (
	"context"
	"errors"
)

// Stable error codes used by the protocol itself. API packages add their own.
const (
	CodeInternal      = "internal"
	CodeUnknownMethod = "unknown_method"
	CodeBadRequest    = "bad_request"
	CodeFrameTooLarge = "frame_too_large"
	CodeCanceled      = "canceled"
	CodeUnavailable   = "unavailable"
)

// Error is an error with a stable code that survives the socket.
type Error struct {
	Code    string
	Message string
	// Unsent is set by the client (never sent on the wire) when the call
	// failed before its request left this process, so retrying it
	// elsewhere cannot apply it twice.
	Unsent bool
}

// NotSent reports whether err is a call failure that happened before the
// request was sent (no connection, no stream): safe to retry.
func NotSent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Unsent
}

// NewError returns a sentinel error with a code; API packages declare their
// sentinels with it.
func NewError(code, message string) *Error { return &Error{Code: code, Message: message} }

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// Is reports whether target is an *Error with the same code, so a sentinel
// matches an error rebuilt on the far side of a socket.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels of the protocol.
var (
	ErrUnknownMethod = NewError(CodeUnknownMethod, "unknown method")
	ErrBadRequest    = NewError(CodeBadRequest, "bad request")
	ErrFrameTooLarge = NewError(CodeFrameTooLarge, "frame too large")
	ErrInternal      = NewError(CodeInternal, "internal error")
	ErrUnavailable   = NewError(CodeUnavailable, "daemon unavailable")
)

// codeOf finds the code to send for err: the code of the outermost *Error
// in its chain, or CodeCanceled for context errors, else CodeInternal.
func codeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return CodeCanceled
	}
	return CodeInternal
}
