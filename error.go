package tes

import (
	"errors"
	"fmt"
)

// Error codes. Every domain error carries one; transports map each code once
// to an HTTP status or a protocol ERROR reply.
const (
	EINVALID      = "invalid"      // the input is wrong; the message says how
	ENOTFOUND     = "not_found"    // the thing asked for does not exist
	ECONFLICT     = "conflict"     // the state changed under the caller (already decided, replay, duplicate)
	EUNAUTHORIZED = "unauthorized" // not signed in, bad credentials, or not allowed
	EFORBIDDEN    = "forbidden"    // signed in but the role may not do this
	ERATELIMIT    = "rate_limited" // too many attempts; try later
	EUNAVAILABLE  = "unavailable"  // a dependency (the store) is down; retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure; details are logged, not shown
)

// Error is a domain error: a code plus a message safe to show a user.
type Error struct {
	Code    string
	Message string
	Err     error // optional cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns a domain error with the given code and a formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for
// any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err: the message of the
// first *Error in its chain, or a generic text that reveals nothing internal.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
