package enginestore

import (
	"errors"
	"fmt"
)

// ErrorCode is an error code of §7.1.
type ErrorCode uint32

const (
	CodeInvalidArgument    ErrorCode = 1
	CodeNotFound           ErrorCode = 2
	CodeConflict           ErrorCode = 3
	CodeUnavailable        ErrorCode = 4
	CodeDeadlineExceeded   ErrorCode = 5
	CodeResourceExhausted  ErrorCode = 6
	CodeUnauthenticated    ErrorCode = 7
	CodeInternal           ErrorCode = 8
	CodeUnimplemented      ErrorCode = 9
	CodeProtocolError      ErrorCode = 10
	CodeFailedPrecondition ErrorCode = 11
	CodeUnsupportedVersion ErrorCode = 12
	CodeShuttingDown       ErrorCode = 13
)

var codeNames = map[ErrorCode]string{
	CodeInvalidArgument: "invalid_argument", CodeNotFound: "not_found", CodeConflict: "conflict",
	CodeUnavailable: "unavailable", CodeDeadlineExceeded: "deadline_exceeded",
	CodeResourceExhausted: "resource_exhausted", CodeUnauthenticated: "unauthenticated", CodeInternal: "internal",
	CodeUnimplemented: "unimplemented", CodeProtocolError: "protocol_error",
	CodeFailedPrecondition: "failed_precondition", CodeUnsupportedVersion: "unsupported_version",
	CodeShuttingDown: "shutting_down",
}

func (c ErrorCode) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("code_%d", uint32(c))
}

// normalizeCode maps codes this client does not know to internal (§7.2, §12).
func normalizeCode(c uint32) ErrorCode {
	if _, ok := codeNames[ErrorCode(c)]; ok {
		return ErrorCode(c)
	}
	return CodeInternal
}

// Error is an error answered by the server (an error frame, §7), or raised by the client with the same meaning
// (a context deadline → deadline_exceeded, a lost connection → unavailable with ConnectionLost set).
type Error struct {
	Code      ErrorCode
	Message   string
	Field     string // the request field the error is about; "" when absent
	Retryable bool   // the server's retryable flag (authoritative), or the client's judgement for local errors
	Method    uint16
	// ConnectionLevel: the error frame had request id 0; the server closes the connection after it (§3.8).
	ConnectionLevel bool
	// ConnectionLost: the connection dropped before the answer; the outcome of the request is unknown.
	ConnectionLost bool
	// Local: raised by the client, not sent by the server.
	Local bool
	// Attempts is the number of times the request was sent.
	Attempts int
	cause    error
}

func (e *Error) Error() string {
	s := "enginestore: " + e.Code.String()
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.cause != nil && e.Message == "" {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap gives the underlying cause (context.DeadlineExceeded for a context deadline, a net error for a lost
// connection).
func (e *Error) Unwrap() error { return e.cause }

// Is matches another *Error by code, so errors.Is(err, &Error{Code: CodeConflict}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// CodeOf returns the code of an *Error in err's chain, or 0.
func CodeOf(err error) ErrorCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func errorFromPayload(method uint16, requestID uint32, payload []byte) *Error {
	var p ErrorPayload
	if err := Unmarshal(payload, &p); err != nil {
		return &Error{Code: CodeInternal, Method: method, Message: "undecodable error payload", cause: err,
			ConnectionLevel: requestID == 0}
	}
	e := &Error{Code: normalizeCode(p.Code), Message: p.Message, Retryable: p.Retryable, Method: method,
		ConnectionLevel: requestID == 0}
	if p.Field != nil {
		e.Field = *p.Field
	}
	return e
}
