package enginestore

import (
	"bytes"
	"encoding/hex"
	"math"
	"testing"
)

func TestSpecExamples(t *testing.T) {
	// §5.3
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "00"}, {-1, "01"}, {1, "02"}, {-2, "03"}, {2, "04"}, {1700000000000, "80a0abfef962"},
		{math.MinInt64, "ffffffffffffffffff01"}} {
		if got := hex.EncodeToString(AppendVarint(nil, ZigZag(c.n))); got != c.want {
			t.Errorf("sint64 %d: %s, want %s", c.n, got, c.want)
		}
		v, _, err := ReadVarint(AppendVarint(nil, ZigZag(c.n)))
		if err != nil || UnZigZag(v) != c.n {
			t.Errorf("sint64 %d does not round-trip", c.n)
		}
	}
	if got := hex.EncodeToString(AppendVarint(nil, 300)); got != "ac02" {
		t.Error(got)
	}
	if got := hex.EncodeToString(AppendVarint(nil, 4194304)); got != "80808002" {
		t.Error(got)
	}
	q := 0.5
	p := Marshal(&SavePositionRequest{Quantity: &q})
	if !bytes.Contains(p, []byte{0x31, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f}) {
		t.Errorf("quantity 0.5: %x", p)
	}
	// §14 worked example
	name := "probe"
	one := uint32(1)
	f := EncodeFrame(Frame{Header: Header{Version: 1, Kind: 1, Method: 1, RequestID: 1},
		Payload: Marshal(&HelloRequest{MinVersion: 1, MaxVersion: &one, ClientName: &name})})
	if got := hex.EncodeToString(f); got != "000000190101000100000001000000000000080110011a0570726f6265" {
		t.Errorf("§14: %s", got)
	}
}

func TestStrictDecoding(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		code    ErrorCode
		field   string
	}{
		{"duplicate field", "0a0161" + "0a0162", CodeInvalidArgument, "model_id"},
		{"wrong wire type", "0801", CodeInvalidArgument, "model_id"},
		{"invalid utf8", "0a01ff", CodeInvalidArgument, "model_id"},
		{"missing required", "", CodeInvalidArgument, "model_id"},
		{"truncated length", "0a05616263", CodeProtocolError, ""},
		{"group wire type", "0a0161" + "1b", CodeProtocolError, ""},
		{"field number 0", "0a0161" + "0000", CodeProtocolError, ""},
		{"varint too long", "0a0161" + "10ffffffffffffffffff02", CodeProtocolError, ""},
		{"truncated varint", "0a0161" + "1080", CodeProtocolError, ""},
	}
	for _, c := range cases {
		b, _ := hex.DecodeString(c.payload)
		var m GetOpenPositionsRequest
		err := Unmarshal(b, &m)
		de, ok := err.(*DecodeError)
		if !ok || de.Code != c.code || de.Field != c.field {
			t.Errorf("%s: %v, want %s field %q", c.name, err, c.code, c.field)
		}
	}
	// unknown fields of wire types 0, 1, 2, 5 are skipped
	b, _ := hex.DecodeString("0a0161" + "1001" + "190000000000000000" + "22026869" + "2d00000000")
	var m GetOpenPositionsRequest
	if err := Unmarshal(b, &m); err != nil || m.ModelID != "a" {
		t.Errorf("unknown fields: %v", err)
	}
	// bool, enum, uint32 ranges; packed repeated scalar
	for _, c := range []struct {
		payload string
		field   string
		msg     interface{}
	}{
		{"0802" + "1200" + "1a00", "ok", &ComponentHealth{}},
		{"0a0142" + "1003", "side", &PositionSnapshot{}},
		{"0a0142" + "1000", "side", &PositionSnapshot{}},
		{"0880808080 10", "code", &ErrorPayload{}},
		{"0801" + "2080808002" + "3a0101", "methods", &HelloResponse{}},
	} {
		b, _ := hex.DecodeString(stripSpaces(c.payload))
		err := Unmarshal(b, c.msg)
		de, ok := err.(*DecodeError)
		if !ok || de.Code != CodeInvalidArgument || de.Field != c.field {
			t.Errorf("%s: %v, want invalid_argument %s", c.payload, err, c.field)
		}
	}
	// defaults: absent source reads as postgres
	var r GetRecentTradesResponse
	if err := Unmarshal(nil, &r); err != nil || r.Source != SourcePostgres {
		t.Errorf("default source: %v %v", r.Source, err)
	}
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

func TestFrameStream(t *testing.T) {
	f := EncodeFrame(Frame{Header: Header{Version: 1, Kind: 2, Method: 6, RequestID: 9}, Payload: []byte{0x0a, 0}})
	two := append(append([]byte{}, f...), f...)
	for i := 0; i < len(f); i++ {
		if _, n, err := DecodeFrame(two[:i], DefaultMaxFrameBytes); n != 0 || err != nil {
			t.Fatalf("partial frame of %d bytes: n=%d err=%v", i, n, err)
		}
	}
	g, n, err := DecodeFrame(two, DefaultMaxFrameBytes)
	if err != nil || n != len(f) || g.RequestID != 9 {
		t.Fatalf("merged: %v %d", err, n)
	}
	if _, _, err := DecodeFrame([]byte{0, 0, 0, 13}, DefaultMaxFrameBytes); err == nil {
		t.Error("length 13 accepted")
	}
	if _, _, err := DecodeFrame([]byte{0, 0x40, 0, 1}, DefaultMaxFrameBytes); err == nil {
		t.Error("length above the limit accepted")
	}
	bad := append([]byte{}, f...)
	bad[5] = 5
	if _, _, err := DecodeFrame(bad, DefaultMaxFrameBytes); err == nil {
		t.Error("kind 5 accepted")
	}
}
