// Package enginestore is a client of the EngineStore wire protocol (proto-spec/README.md), written from the spec
// with the Go standard library only.
package enginestore

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Frame kinds (§3.3).
const (
	KindRequest  uint8 = 1
	KindResponse uint8 = 2
	KindError    uint8 = 3
	KindNotice   uint8 = 4
)

// Header flags (§3.5).
const (
	FlagRetry    uint16 = 0x0001 // request: this retries an earlier attempt with the same idempotency key
	FlagReplayed uint16 = 0x0002 // response: the recorded outcome was replayed, not executed again
)

// HeaderSize is the fixed frame header size; MinFrameLength the smallest valid length prefix (§3.1).
const (
	HeaderSize                 = 14
	MinFrameLength             = 14
	DefaultMaxFrameBytes       = 4194304
	ProtocolVersion      uint8 = 1
)

// Header is the fixed 14-byte frame header (§3.1). All fields are big-endian on the wire.
type Header struct {
	Version    uint8
	Kind       uint8
	Method     uint16
	RequestID  uint32
	Flags      uint16
	DeadlineMs uint32
}

// Frame is a header and its payload (the protobuf-wire message selected by Method and Kind).
type Frame struct {
	Header
	Payload []byte
}

// FrameError is a framing failure (bad length, unknown kind); the connection must be closed (§3.7).
type FrameError struct{ Reason string }

func (e *FrameError) Error() string { return "enginestore: bad frame: " + e.Reason }

// AppendFrame appends the complete frame (length prefix, header, payload) to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	var h [4 + HeaderSize]byte
	binary.BigEndian.PutUint32(h[0:], uint32(HeaderSize+len(f.Payload)))
	h[4] = f.Version
	h[5] = f.Kind
	binary.BigEndian.PutUint16(h[6:], f.Method)
	binary.BigEndian.PutUint32(h[8:], f.RequestID)
	binary.BigEndian.PutUint16(h[12:], f.Flags)
	binary.BigEndian.PutUint32(h[14:], f.DeadlineMs)
	dst = append(dst, h[:]...)
	return append(dst, f.Payload...)
}

// EncodeFrame returns the complete frame bytes.
func EncodeFrame(f Frame) []byte { return AppendFrame(make([]byte, 0, 4+HeaderSize+len(f.Payload)), f) }

func checkLength(n, limit uint32) error {
	if n < MinFrameLength || n > limit {
		return &FrameError{fmt.Sprintf("length %d outside %d..%d", n, MinFrameLength, limit)}
	}
	return nil
}

func parseBody(body []byte) (Frame, error) {
	f := Frame{Header: Header{
		Version:    body[0],
		Kind:       body[1],
		Method:     binary.BigEndian.Uint16(body[2:]),
		RequestID:  binary.BigEndian.Uint32(body[4:]),
		Flags:      binary.BigEndian.Uint16(body[8:]),
		DeadlineMs: binary.BigEndian.Uint32(body[10:]),
	}, Payload: body[HeaderSize:]}
	if f.Kind < KindRequest || f.Kind > KindNotice {
		return f, &FrameError{fmt.Sprintf("unknown kind %d", f.Kind)}
	}
	return f, nil
}

// DecodeFrame parses one frame from the start of buf. It returns the frame and the number of bytes it used, or
// n = 0 and a nil error when buf does not yet hold a whole frame. limit bounds the length prefix (§3.7).
func DecodeFrame(buf []byte, limit uint32) (Frame, int, error) {
	if len(buf) < 4 {
		return Frame{}, 0, nil
	}
	n := binary.BigEndian.Uint32(buf)
	if err := checkLength(n, limit); err != nil {
		return Frame{}, 0, err
	}
	if uint64(len(buf)) < 4+uint64(n) {
		return Frame{}, 0, nil
	}
	f, err := parseBody(buf[4 : 4+n])
	return f, int(4 + n), err
}

// ReadFrame reads exactly one frame from r, checking the length before allocating the body.
func ReadFrame(r io.Reader, limit uint32) (Frame, error) {
	var p [4]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(p[:])
	if err := checkLength(n, limit); err != nil {
		return Frame{}, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return parseBody(body)
}
