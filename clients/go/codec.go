package enginestore

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Payload codec (§5): protobuf binary wire format with EngineStore's stricter rules (§5.4, §5.5), driven by the
// `es` struct tags of the message types in messages.go:
//
//	es:"<number>,<name>,<type>,<presence>"
//
// type: string bytes double sint64 uint32 uint64 bool enumN (values 1..N) msg
// presence: req (always sent; absent → invalid_argument), def or def=X (always sent; absent reads as X),
// opt (pointer; sent when set), rep (slice; one tag per element, never packed), omit (sent when non-zero).

// MaxNesting is the deepest a nested message may sit below the top-level message (§5.4).
const MaxNesting = 16

// DecodeError is a payload that does not decode: Code is CodeProtocolError for broken encoding (Field empty) or
// CodeInvalidArgument for a bad field, naming it (§5.5).
type DecodeError struct {
	Code   ErrorCode
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("enginestore: %s: field %s: %s", e.Code, e.Field, e.Reason)
	}
	return fmt.Sprintf("enginestore: %s: %s", e.Code, e.Reason)
}

func broken(format string, a ...interface{}) error {
	return &DecodeError{Code: CodeProtocolError, Reason: fmt.Sprintf(format, a...)}
}
func badField(name, format string, a ...interface{}) error {
	return &DecodeError{Code: CodeInvalidArgument, Field: name, Reason: fmt.Sprintf(format, a...)}
}

type wkind int

const (
	kString wkind = iota
	kBytes
	kDouble
	kSint64
	kUint32
	kUint64
	kBool
	kEnum
	kMsg
)

type presence int

const (
	pReq presence = iota
	pDef
	pOpt
	pRep
	pOmit
)

type fieldInfo struct {
	num     uint64
	name    string
	kind    wkind
	pres    presence
	enumMax uint64
	def     string // default literal for def=X
	index   int
	msg     *msgInfo // nested message type
	elem    reflect.Type
}

type msgInfo struct {
	typ    reflect.Type
	fields []*fieldInfo // ascending field number
	byNum  map[uint64]*fieldInfo
}

func (f *fieldInfo) wireType() uint64 {
	switch f.kind {
	case kDouble:
		return 1
	case kString, kBytes, kMsg:
		return 2
	default:
		return 0
	}
}

var infoCache sync.Map // reflect.Type → *msgInfo
var infoMu sync.Mutex

func infoFor(t reflect.Type) *msgInfo {
	if mi, ok := infoCache.Load(t); ok {
		return mi.(*msgInfo)
	}
	infoMu.Lock()
	defer infoMu.Unlock()
	return buildInfo(t, map[reflect.Type]*msgInfo{})
}

func buildInfo(t reflect.Type, building map[reflect.Type]*msgInfo) *msgInfo {
	if mi, ok := infoCache.Load(t); ok {
		return mi.(*msgInfo)
	}
	if mi, ok := building[t]; ok {
		return mi
	}
	mi := &msgInfo{typ: t, byNum: map[uint64]*fieldInfo{}}
	building[t] = mi
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("es")
		if !ok {
			continue
		}
		parts := strings.Split(tag, ",")
		if len(parts) != 4 {
			panic("enginestore: bad tag on " + t.Name() + "." + sf.Name)
		}
		num, err := strconv.ParseUint(parts[0], 10, 32)
		if err != nil {
			panic(err)
		}
		f := &fieldInfo{num: num, name: parts[1], index: i}
		switch typ := parts[2]; {
		case typ == "string":
			f.kind = kString
		case typ == "bytes":
			f.kind = kBytes
		case typ == "double":
			f.kind = kDouble
		case typ == "sint64":
			f.kind = kSint64
		case typ == "uint32":
			f.kind = kUint32
		case typ == "uint64":
			f.kind = kUint64
		case typ == "bool":
			f.kind = kBool
		case strings.HasPrefix(typ, "enum"):
			f.kind = kEnum
			f.enumMax, _ = strconv.ParseUint(typ[4:], 10, 8)
		case typ == "msg":
			f.kind = kMsg
		default:
			panic("enginestore: bad type in tag " + tag)
		}
		switch p := parts[3]; {
		case p == "req":
			f.pres = pReq
		case p == "def":
			f.pres = pDef
		case strings.HasPrefix(p, "def="):
			f.pres, f.def = pDef, p[4:]
		case p == "opt":
			f.pres = pOpt
		case p == "rep":
			f.pres = pRep
		case p == "omit":
			f.pres = pOmit
		default:
			panic("enginestore: bad presence in tag " + tag)
		}
		f.elem = sf.Type
		if f.pres == pOpt || f.pres == pRep {
			if !(f.pres == pRep && f.kind == kBytes) {
				f.elem = sf.Type.Elem()
			}
		}
		if f.kind == kMsg {
			f.msg = buildInfo(f.elem, building)
		}
		mi.fields = append(mi.fields, f)
		mi.byNum[num] = f
	}
	sort.Slice(mi.fields, func(a, b int) bool { return mi.fields[a].num < mi.fields[b].num })
	infoCache.Store(t, mi)
	return mi
}

// ---------------------------------------------------------------- encoding

// AppendVarint appends the shortest LEB128 form of v.
func AppendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// ZigZag encodes a signed integer for sint64 (§5.3).
func ZigZag(n int64) uint64 { return uint64(n<<1) ^ uint64(n>>63) }

// UnZigZag decodes a sint64 value.
func UnZigZag(z uint64) int64 { return int64(z>>1) ^ -int64(z&1) }

// Marshal encodes msg (a pointer to a message struct) canonically (§5.6).
func Marshal(msg interface{}) []byte {
	v := reflect.ValueOf(msg)
	if v.Kind() == reflect.Ptr {
		v = v.Elem()
	}
	return appendMsg(nil, v, infoFor(v.Type()))
}

func appendMsg(b []byte, v reflect.Value, mi *msgInfo) []byte {
	for _, f := range mi.fields {
		fv := v.Field(f.index)
		switch f.pres {
		case pReq, pDef:
			b = appendField(b, f, fv)
		case pOmit:
			if !fv.IsZero() {
				b = appendField(b, f, fv)
			}
		case pOpt:
			if !fv.IsNil() {
				b = appendField(b, f, fv.Elem())
			}
		case pRep:
			for i := 0; i < fv.Len(); i++ {
				b = appendField(b, f, fv.Index(i))
			}
		}
	}
	return b
}

func appendField(b []byte, f *fieldInfo, v reflect.Value) []byte {
	b = AppendVarint(b, f.num<<3|f.wireType())
	switch f.kind {
	case kString:
		b = AppendVarint(b, uint64(v.Len()))
		b = append(b, v.String()...)
	case kBytes:
		b = AppendVarint(b, uint64(v.Len()))
		b = append(b, v.Bytes()...)
	case kDouble:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float()))
	case kSint64:
		b = AppendVarint(b, ZigZag(v.Int()))
	case kUint32, kUint64:
		b = AppendVarint(b, v.Uint())
	case kBool:
		if v.Bool() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case kEnum:
		b = AppendVarint(b, uint64(v.Int()))
	case kMsg:
		inner := appendMsg(nil, v, f.msg)
		b = AppendVarint(b, uint64(len(inner)))
		b = append(b, inner...)
	}
	return b
}

// ---------------------------------------------------------------- decoding

// ReadVarint decodes a varint at the start of b (at most 10 bytes, a 10th byte of 0 or 1; §5.2).
func ReadVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < 10; i++ {
		if i >= len(b) {
			return 0, 0, broken("truncated varint")
		}
		c := b[i]
		if i == 9 && c > 1 {
			return 0, 0, broken("varint wider than 64 bits")
		}
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, broken("varint longer than 10 bytes")
}

// Unmarshal decodes payload into msg (a pointer to a message struct) with the strict rules of §5.4. It returns
// a *DecodeError on failure.
func Unmarshal(payload []byte, msg interface{}) error {
	v := reflect.ValueOf(msg).Elem()
	v.Set(reflect.Zero(v.Type()))
	return decodeMsg(payload, v, infoFor(v.Type()), 0)
}

func decodeMsg(b []byte, v reflect.Value, mi *msgInfo, depth int) error {
	seen := make(map[uint64]bool, len(mi.fields))
	for len(b) > 0 {
		key, n, err := ReadVarint(b)
		if err != nil {
			return err
		}
		b = b[n:]
		num, wt := key>>3, key&7
		if num == 0 || num > 1<<29-1 {
			return broken("field number %d out of range", num)
		}
		var scalar uint64
		var data []byte
		switch wt {
		case 0:
			scalar, n, err = ReadVarint(b)
			if err != nil {
				return err
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return broken("truncated fixed64 (field %d)", num)
			}
			scalar, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n, err := ReadVarint(b)
			if err != nil {
				return err
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return broken("length %d of field %d exceeds the payload", l, num)
			}
			data, b = b[:l], b[l:]
		case 5:
			if len(b) < 4 {
				return broken("truncated fixed32 (field %d)", num)
			}
			b = b[4:]
		default:
			return broken("wire type %d (field %d)", wt, num)
		}
		f := mi.byNum[num]
		if f == nil {
			continue // unknown field: skipped (§5.4)
		}
		if wt != f.wireType() {
			return badField(f.name, "wrong wire type %d", wt)
		}
		if f.pres != pRep {
			if seen[num] {
				return badField(f.name, "duplicate field")
			}
		}
		seen[num] = true
		fv := v.Field(f.index)
		var target reflect.Value
		switch f.pres {
		case pOpt:
			p := reflect.New(f.elem)
			fv.Set(p)
			target = p.Elem()
		case pRep:
			fv.Set(reflect.Append(fv, reflect.Zero(f.elem)))
			target = fv.Index(fv.Len() - 1)
		default:
			target = fv
		}
		if err := setValue(f, target, scalar, data, depth); err != nil {
			return err
		}
	}
	for _, f := range mi.fields {
		if seen[f.num] {
			continue
		}
		switch {
		case f.pres == pReq:
			return badField(f.name, "missing required field")
		case f.pres == pDef && f.def != "":
			fv := v.Field(f.index)
			switch fv.Kind() {
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				d, _ := strconv.ParseInt(f.def, 10, 64)
				fv.SetInt(d)
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				d, _ := strconv.ParseUint(f.def, 10, 64)
				fv.SetUint(d)
			}
		}
	}
	return nil
}

func setValue(f *fieldInfo, t reflect.Value, scalar uint64, data []byte, depth int) error {
	switch f.kind {
	case kString:
		if !utf8.Valid(data) {
			return badField(f.name, "invalid UTF-8")
		}
		t.SetString(string(data))
	case kBytes:
		t.SetBytes(append([]byte{}, data...))
	case kDouble:
		t.SetFloat(math.Float64frombits(scalar))
	case kSint64:
		t.SetInt(UnZigZag(scalar))
	case kUint32:
		if scalar > math.MaxUint32 {
			return badField(f.name, "value %d above 2^32-1", scalar)
		}
		t.SetUint(scalar)
	case kUint64:
		t.SetUint(scalar)
	case kBool:
		if scalar > 1 {
			return badField(f.name, "bool value %d", scalar)
		}
		t.SetBool(scalar == 1)
	case kEnum:
		if scalar < 1 || scalar > f.enumMax {
			return badField(f.name, "undefined enum value %d", scalar)
		}
		t.SetInt(int64(scalar))
	case kMsg:
		if depth+1 > MaxNesting {
			return broken("nesting deeper than %d", MaxNesting)
		}
		return decodeMsg(data, t, f.msg, depth+1)
	}
	return nil
}
