package enginestore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand"
	"net"
	"sync"
	"time"
)

// Options configure a Client. The zero value is usable.
type Options struct {
	ClientName string // sent in Hello (client_name); default "enginestore-go"
	// MaxAttempts bounds how often one call is sent (first attempt included) when it fails with a retryable
	// error or a lost connection. Default 8. The context deadline bounds retries too.
	MaxAttempts    int
	InitialBackoff time.Duration // default 25 ms, doubled per retry up to MaxBackoff, with jitter
	MaxBackoff     time.Duration // default 1 s
	// DefaultDeadline is sent as deadline_ms when the call's context has no deadline. 0: the server's default.
	DefaultDeadline time.Duration
	DialTimeout     time.Duration // connect + Hello when the context has no deadline; default 5 s
}

// Client is a connection to an EngineStore server over a Unix socket. It is safe for concurrent use: calls are
// pipelined over one connection and matched to their answers by request id. After a broken connection the next
// call reconnects, and calls whose outcome is unknown are retried with the same payload bytes (the same
// idempotency key for writes) and the retry flag.
type Client struct {
	path string
	opts Options

	mu     sync.Mutex // guards cur and closed; held while dialing, so one dial at a time
	cur    *conn
	closed bool
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("enginestore: client closed")

// Dial connects to the server at the Unix socket path and performs the Hello handshake.
func Dial(ctx context.Context, path string, opts *Options) (*Client, error) {
	c := &Client{path: path}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.ClientName == "" {
		c.opts.ClientName = "enginestore-go"
	}
	if c.opts.MaxAttempts <= 0 {
		c.opts.MaxAttempts = 8
	}
	if c.opts.InitialBackoff <= 0 {
		c.opts.InitialBackoff = 25 * time.Millisecond
	}
	if c.opts.MaxBackoff <= 0 {
		c.opts.MaxBackoff = time.Second
	}
	if c.opts.DialTimeout <= 0 {
		c.opts.DialTimeout = 5 * time.Second
	}
	if _, err := c.getConn(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes the connection. Calls in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cur != nil {
		c.cur.fail(ErrClosed)
		c.cur = nil
	}
	return nil
}

// ServerInfo returns the HelloOk of the current connection (zero before the first connection).
func (c *Client) ServerInfo() HelloResponse {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return HelloResponse{}
	}
	return c.cur.hello
}

// Supports reports whether the current connection's server advertised method in HelloOk's methods list.
func (c *Client) Supports(method uint16) bool {
	for _, m := range c.ServerInfo().Methods {
		if m == uint64(method) {
			return true
		}
	}
	return false
}

// NewIdempotencyKey returns a random UUID (version 4), a fresh key for one logical write call (§9.2).
func NewIdempotencyKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ---------------------------------------------------------------- calls

// Call sends one request (req encoded canonically, once) and decodes the response into resp. It retries
// retryable errors and lost connections with the same bytes, within Options.MaxAttempts and ctx. It returns
// the response header (Flags has FlagReplayed for a replayed write).
func (c *Client) Call(ctx context.Context, method uint16, req, resp interface{}) (Header, error) {
	return c.CallRaw(ctx, method, Marshal(req), resp)
}

// CallRaw is Call with a payload that is already encoded.
func (c *Client) CallRaw(ctx context.Context, method uint16, payload []byte, resp interface{}) (Header, error) {
	backoff := c.opts.InitialBackoff
	for attempt := 1; ; attempt++ {
		f, err := c.once(ctx, method, payload, attempt > 1)
		if err == nil {
			if f.Kind == KindResponse {
				if derr := Unmarshal(f.Payload, resp); derr != nil {
					de := derr.(*DecodeError)
					return f.Header, &Error{Code: de.Code, Field: de.Field, Method: method, Local: true,
						Message: "undecodable response: " + de.Reason, Attempts: attempt, cause: derr}
				}
				return f.Header, nil
			}
			err = errorFromPayload(method, f.RequestID, f.Payload)
		}
		var e *Error
		if !errors.As(err, &e) {
			return Header{}, err
		}
		e.Attempts = attempt
		if !e.Retryable || attempt >= c.opts.MaxAttempts || ctx.Err() != nil {
			return Header{}, e
		}
		sleep := backoff/2 + time.Duration(mrand.Int63n(int64(backoff)))
		if backoff *= 2; backoff > c.opts.MaxBackoff {
			backoff = c.opts.MaxBackoff
		}
		t := time.NewTimer(sleep)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Header{}, ctxError(ctx, attempt)
		}
	}
}

func ctxError(ctx context.Context, attempts int) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &Error{Code: CodeDeadlineExceeded, Message: "context deadline exceeded", Retryable: true, Local: true,
			Attempts: attempts, cause: ctx.Err()}
	}
	return fmt.Errorf("enginestore: %w", ctx.Err())
}

func (c *Client) once(ctx context.Context, method uint16, payload []byte, retry bool) (Frame, error) {
	if ctx.Err() != nil {
		return Frame{}, ctxError(ctx, 0)
	}
	cn, err := c.getConn(ctx)
	if err != nil {
		return Frame{}, err
	}
	var deadlineMs uint32
	if d, ok := ctx.Deadline(); ok {
		left := time.Until(d)
		if left <= 0 {
			return Frame{}, ctxError(ctx, 0)
		}
		ms := (left + time.Millisecond - 1) / time.Millisecond
		if ms > 1<<32-1 {
			ms = 1<<32 - 1
		}
		deadlineMs = uint32(ms)
	} else if c.opts.DefaultDeadline > 0 {
		deadlineMs = uint32(c.opts.DefaultDeadline / time.Millisecond)
	}
	var flags uint16
	if retry && IsWriteMethod(method) {
		flags = FlagRetry
	}
	if uint64(HeaderSize+len(payload)) > uint64(cn.hello.MaxFrameBytes) {
		return Frame{}, &Error{Code: CodeInvalidArgument, Local: true, Method: method,
			Message: fmt.Sprintf("request of %d bytes exceeds max_frame_bytes %d", HeaderSize+len(payload), cn.hello.MaxFrameBytes)}
	}
	pc, err := cn.send(ctx, Header{Version: byte(cn.hello.Version), Kind: KindRequest, Method: method,
		Flags: flags, DeadlineMs: deadlineMs}, payload)
	if err != nil {
		return Frame{}, err
	}
	select {
	case r := <-pc:
		return r.f, r.err
	case <-ctx.Done():
		// The request id stays reserved until its answer arrives (§3.4).
		return Frame{}, ctxError(ctx, 0)
	}
}

func (c *Client) getConn(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cur != nil && c.cur.usable() {
		return c.cur, nil
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.cur = cn
	return cn, nil
}

// ---------------------------------------------------------------- one connection

type reply struct {
	f   Frame
	err error
}

type conn struct {
	nc    net.Conn
	hello HelloResponse
	limit uint32
	slots chan struct{} // max_in_flight slots; nil when not advertised

	wmu sync.Mutex // serializes frame writes

	mu       sync.Mutex
	pending  map[uint32]chan reply
	nextID   uint32
	dead     bool
	deadErr  error
	draining bool // going_away received: no new requests on this connection
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	dctx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, c.opts.DialTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(dctx, "unix", c.path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, 0)
		}
		return nil, &Error{Code: CodeUnavailable, Message: "connect: " + err.Error(), Retryable: true, Local: true,
			ConnectionLost: true, cause: err}
	}
	fail := func(err error) (*conn, error) {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctxError(ctx, 0)
		}
		var e *Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, &Error{Code: CodeUnavailable, Message: "handshake: " + err.Error(), Retryable: true,
			Local: true, ConnectionLost: true, cause: err}
	}
	if dl, ok := dctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	one := uint32(1)
	hello := Marshal(&HelloRequest{MinVersion: 1, MaxVersion: &one, ClientName: &c.opts.ClientName})
	if _, err := nc.Write(EncodeFrame(Frame{Header: Header{Version: 1, Kind: KindRequest, Method: MethodHello,
		RequestID: 1}, Payload: hello})); err != nil {
		return fail(err)
	}
	var hr HelloResponse
	for {
		f, err := ReadFrame(nc, DefaultMaxFrameBytes)
		if err != nil {
			return fail(err)
		}
		if f.Kind == KindNotice {
			continue
		}
		if f.Kind == KindError && (f.RequestID == 0 || f.RequestID == 1) {
			return fail(errorFromPayload(MethodHello, f.RequestID, f.Payload))
		}
		if f.Kind != KindResponse || f.RequestID != 1 {
			return fail(&FrameError{fmt.Sprintf("unexpected frame kind %d id %d during Hello", f.Kind, f.RequestID)})
		}
		if err := Unmarshal(f.Payload, &hr); err != nil {
			return fail(err)
		}
		break
	}
	if hr.Version != 1 {
		return fail(&Error{Code: CodeUnsupportedVersion, Local: true, Message: fmt.Sprintf("server chose version %d", hr.Version)})
	}
	nc.SetDeadline(time.Time{})
	cn := &conn{nc: nc, hello: hr, limit: hr.MaxFrameBytes, pending: map[uint32]chan reply{}, nextID: 1}
	if cn.limit < DefaultMaxFrameBytes {
		cn.limit = DefaultMaxFrameBytes
	}
	if hr.MaxInFlight > 0 {
		cn.slots = make(chan struct{}, hr.MaxInFlight)
	}
	go cn.readLoop()
	return cn, nil
}

func (cn *conn) usable() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return !cn.dead && !cn.draining
}

func (cn *conn) lostError() error {
	return &Error{Code: CodeUnavailable, Message: "connection lost: " + fmt.Sprint(cn.deadErr), Retryable: true,
		Local: true, ConnectionLost: true, cause: cn.deadErr}
}

func (cn *conn) release() {
	if cn.slots != nil {
		<-cn.slots
	}
}

func (cn *conn) send(ctx context.Context, h Header, payload []byte) (chan reply, error) {
	if cn.slots != nil {
		select {
		case cn.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctxError(ctx, 0)
		}
	}
	ch := make(chan reply, 1)
	cn.mu.Lock()
	if cn.dead {
		err := cn.lostError()
		cn.mu.Unlock()
		cn.release()
		return nil, err
	}
	for {
		cn.nextID++
		if cn.nextID == 0 {
			cn.nextID = 1
		}
		if _, busy := cn.pending[cn.nextID]; !busy {
			break
		}
	}
	h.RequestID = cn.nextID
	cn.pending[h.RequestID] = ch
	cn.mu.Unlock()

	buf := EncodeFrame(Frame{Header: h, Payload: payload})
	cn.wmu.Lock()
	_, err := cn.nc.Write(buf)
	cn.wmu.Unlock()
	if err != nil {
		cn.fail(err) // answers ch with a lost-connection error
	}
	return ch, nil
}

// fail marks the connection dead, closes it and answers every unanswered request with err's lost-connection
// error (or with the connection-level error frame the server sent).
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.dead {
		cn.mu.Unlock()
		return
	}
	cn.dead, cn.deadErr = true, err
	pending := cn.pending
	cn.pending = map[uint32]chan reply{}
	cn.mu.Unlock()
	cn.nc.Close()
	for _, ch := range pending {
		var out error
		var e *Error
		if errors.As(err, &e) && e.ConnectionLevel {
			cp := *e
			cp.ConnectionLost = true
			out = &cp
		} else if err == ErrClosed {
			out = ErrClosed
		} else {
			out = cn.lostError()
		}
		cn.release()
		ch <- reply{err: out}
	}
}

func (cn *conn) readLoop() {
	for {
		f, err := ReadFrame(cn.nc, cn.limit)
		if err != nil {
			cn.fail(err)
			return
		}
		switch {
		case f.Kind == KindNotice:
			var n Notice
			if Unmarshal(f.Payload, &n) == nil && n.Code == NoticeGoingAway {
				cn.mu.Lock()
				cn.draining = true
				cn.mu.Unlock()
			}
		case f.Kind == KindError && f.RequestID == 0:
			cn.fail(errorFromPayload(f.Method, 0, f.Payload))
			return
		case f.Kind == KindResponse || f.Kind == KindError:
			cn.mu.Lock()
			ch, ok := cn.pending[f.RequestID]
			delete(cn.pending, f.RequestID)
			cn.mu.Unlock()
			if ok {
				cn.release()
				ch <- reply{f: f}
			}
		default:
			cn.fail(&FrameError{fmt.Sprintf("server sent kind %d", f.Kind)})
			return
		}
	}
}
