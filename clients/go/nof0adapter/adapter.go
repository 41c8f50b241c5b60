// Package nof0adapter stores nof0's engine events in EngineStore. Adapter implements nof0's
// manager.PersistenceService and executor.ConversationRecorder on mirrored types (types.go); nof0 wires it in with
// a small shim (clients/go/README.md, "Using EngineStore from nof0").
package nof0adapter

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"enginestore"
)

var (
	_ PersistenceService   = (*Adapter)(nil)
	_ ConversationRecorder = (*Adapter)(nil)
)

// Options configure an Adapter. The zero value is usable.
type Options struct {
	// DefaultExchange is the exchange_provider of a position whose event has no Trader.Exchange. Default "unknown"
	// (what nof0 writes).
	DefaultExchange string
	// Now stamps events whose own time is zero. Default time.Now. Such events cannot be deduplicated on replay:
	// nof0's manager stamps every event it emits (decision cycles only when the journal is on).
	Now func() time.Time
	// HydrateWait bounds how long HydrateCaches keeps retrying while another Hydrate holds EngineStore's hydrate
	// lock (e.g. the service's own start-up Hydrate). Default 10 s; the context bounds it too.
	HydrateWait time.Duration
	// CloseFillSize sends a close event's fill size as exit_size: smaller than the open size is a partial close,
	// larger is refused (invalid_argument, exit_size). Off: a close event closes the whole open size, as nof0's
	// close action does on the exchange and nof0's own persistence does in Postgres (status closed, whatever the
	// fill size), so a fill that differs from the stored size by the exchange's size rounding leaves no dust open.
	// Either way one event gives one request: no fallback that a replay could take differently.
	CloseFillSize bool
	// OnClose, when set, receives every stored close with its realized PnL and fees (also when replayed).
	OnClose func(PositionEvent, *enginestore.ClosePositionResponse)
	// Logf reports what is not an error (a Hydrate that did not run). Default log.Printf.
	Logf func(format string, args ...interface{})
}

// Adapter maps nof0 events to EngineStore calls over one Client. Safe for concurrent use.
type Adapter struct {
	c    *enginestore.Client
	opts Options
}

// New returns an Adapter that calls c.
func New(c *enginestore.Client, opts *Options) *Adapter {
	a := &Adapter{c: c}
	if opts != nil {
		a.opts = *opts
	}
	if a.opts.DefaultExchange == "" {
		a.opts.DefaultExchange = "unknown"
	}
	if a.opts.Now == nil {
		a.opts.Now = time.Now
	}
	if a.opts.HydrateWait <= 0 {
		a.opts.HydrateWait = 10 * time.Second
	}
	if a.opts.Logf == nil {
		a.opts.Logf = log.Printf
	}
	return a
}

// Error is what the adapter's methods return when EngineStore refused or could not take an event.
type Error struct {
	Op       string // open, close, decision, snapshot, analytics, hydrate, conversation
	TraderID string
	Symbol   string
	Err      error // an *enginestore.Error, or ErrInvalidEvent
}

func (e *Error) Error() string {
	s := "nof0adapter: " + e.Op + " " + e.TraderID
	if e.Symbol != "" {
		s += "/" + e.Symbol
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable: EngineStore was unavailable, or the outcome is unknown, after the client's own retries (same key,
// same bytes, within the context). Recording the same event again later is safe and may succeed. Otherwise the
// event was refused (invalid_argument, not_found for a close with no open position, ErrInvalidEvent) and will be
// refused again.
func (e *Error) Retryable() bool {
	var es *enginestore.Error
	return errors.As(e.Err, &es) && (es.Retryable || es.ConnectionLost)
}

// IsRetryable reports whether err is an *Error that is Retryable.
func IsRetryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Retryable()
}

func wrap(op, trader, symbol string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, TraderID: trader, Symbol: symbol, Err: err}
}

// RecordPositionEvent: open → SavePosition, close → ClosePosition. Other event types are ignored, as nof0 does.
func (a *Adapter) RecordPositionEvent(ctx context.Context, ev PositionEvent) error {
	var err error
	switch ev.Event {
	case PositionEventOpen:
		_, err = a.OpenPosition(ctx, ev)
	case PositionEventClose:
		_, err = a.ClosePosition(ctx, ev)
	}
	return err
}

// OpenPosition records an open event (SavePosition) and returns the service's answer; nil, nil for an event nof0
// ignores. An open for a symbol that is already open updates that position to the event's values, as nof0's own
// Postgres service does.
func (a *Adapter) OpenPosition(ctx context.Context, ev PositionEvent) (*enginestore.SavePositionResponse, error) {
	req, err := a.OpenRequest(ev)
	if req == nil || err != nil {
		return nil, wrap("open", eventTrader(&ev), ev.Decision.Symbol, err)
	}
	r, err := a.c.SavePosition(ctx, req)
	return r, wrap("open", req.ModelID, req.Symbol, err)
}

// ClosePosition records a close event (ClosePosition) and returns the realized PnL and fees. Nothing open → a
// not_found *enginestore.Error; with Options.CloseFillSize, a fill size above the open size → invalid_argument
// (exit_size).
func (a *Adapter) ClosePosition(ctx context.Context, ev PositionEvent) (*enginestore.ClosePositionResponse, error) {
	req, err := a.CloseRequest(ev)
	if req == nil || err != nil {
		return nil, wrap("close", eventTrader(&ev), ev.Decision.Symbol, err)
	}
	r, err := a.c.ClosePosition(ctx, req)
	if err != nil {
		return nil, wrap("close", req.ModelID, req.Symbol, err)
	}
	if a.opts.OnClose != nil {
		a.opts.OnClose(ev, r)
	}
	return r, nil
}

// RecordDecisionCycle stores one decision cycle (RecordDecisionCycle).
func (a *Adapter) RecordDecisionCycle(ctx context.Context, rec DecisionCycleRecord) error {
	_, err := a.DecisionCycle(ctx, rec)
	return err
}

// DecisionCycle is RecordDecisionCycle returning the service's answer (nil, nil for an ignored record).
func (a *Adapter) DecisionCycle(ctx context.Context, rec DecisionCycleRecord) (*enginestore.RecordDecisionCycleResponse, error) {
	req, err := a.DecisionRequest(rec)
	if req == nil || err != nil {
		return nil, wrap("decision", rec.TraderID, "", err)
	}
	r, err := a.c.RecordDecisionCycle(ctx, req)
	return r, wrap("decision", req.ModelID, "", err)
}

// RecordAccountSnapshot stores an account sync (SaveSnapshot). A snapshot the service throttles (stored = false,
// within snapshot_min_interval_ms of the trader's last one) is not an error.
func (a *Adapter) RecordAccountSnapshot(ctx context.Context, s AccountSyncSnapshot) error {
	_, err := a.AccountSnapshot(ctx, s)
	return err
}

// AccountSnapshot is RecordAccountSnapshot returning the service's answer (nil, nil for an ignored snapshot).
func (a *Adapter) AccountSnapshot(ctx context.Context, s AccountSyncSnapshot) (*enginestore.SaveSnapshotResponse, error) {
	req, err := a.SnapshotRequest(s)
	if req == nil || err != nil {
		return nil, wrap("snapshot", s.TraderID, "", err)
	}
	r, err := a.c.SaveSnapshot(ctx, req)
	return r, wrap("snapshot", s.TraderID, "", err)
}

// RecordAnalytics stores performance metrics (UpdateAnalytics), which also feed the leaderboard.
func (a *Adapter) RecordAnalytics(ctx context.Context, s AnalyticsSnapshot) error {
	_, err := a.Analytics(ctx, s)
	return err
}

// Analytics is RecordAnalytics returning the service's answer (nil, nil for an ignored snapshot).
func (a *Adapter) Analytics(ctx context.Context, s AnalyticsSnapshot) (*enginestore.UpdateAnalyticsResponse, error) {
	req, err := a.AnalyticsRequest(s)
	if req == nil || err != nil {
		return nil, wrap("analytics", s.TraderID, "", err)
	}
	r, err := a.c.UpdateAnalytics(ctx, req)
	return r, wrap("analytics", s.TraderID, "", err)
}

// RecordConversation stores one executor → LLM exchange (RecordConversation, method 39). A server without method
// 39 answers unimplemented.
func (a *Adapter) RecordConversation(ctx context.Context, rec ConversationRecord) error {
	_, err := a.Conversation(ctx, rec)
	return err
}

// Conversation is RecordConversation returning the service's answer (nil, nil for an ignored record).
func (a *Adapter) Conversation(ctx context.Context, rec ConversationRecord) (*enginestore.RecordConversationResponse, error) {
	req, err := a.ConversationRequest(rec)
	if req == nil || err != nil {
		return nil, wrap("conversation", rec.ModelID, "", err)
	}
	r, err := a.c.RecordConversation(ctx, req)
	return r, wrap("conversation", req.ModelID, "", err)
}

// HydrateCaches rebuilds the cache keys of the given traders from Postgres (Hydrate, the ids as models and
// traders). No ids → nothing to do. While another Hydrate holds the lock (ran = false) it retries for up to
// Options.HydrateWait; if it still has not run, that is logged and not an error: every EngineStore read refills
// a missing key from Postgres, so a cold cache is slower, not wrong.
func (a *Adapter) HydrateCaches(ctx context.Context, traderIDs []string) error {
	_, err := a.Hydrate(ctx, traderIDs)
	return err
}

// Hydrate is HydrateCaches returning the last answer (nil, nil when there was nothing to do).
func (a *Adapter) Hydrate(ctx context.Context, traderIDs []string) (*enginestore.HydrateResponse, error) {
	req := HydrateRequest(traderIDs)
	if req == nil {
		return nil, nil
	}
	give := time.Now().Add(a.opts.HydrateWait)
	backoff := 100 * time.Millisecond
	for {
		r, err := a.c.Hydrate(ctx, req)
		if err != nil {
			return nil, wrap("hydrate", fmt.Sprint(req.Models), "", err)
		}
		if r.Ran || time.Now().Add(backoff).After(give) {
			if !r.Ran {
				a.opts.Logf("nof0adapter: hydrate %v did not run: another Hydrate held the lock for %s", req.Models, a.opts.HydrateWait)
			}
			return r, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			a.opts.Logf("nof0adapter: hydrate %v did not run before the context ended: another Hydrate held the lock", req.Models)
			return r, nil
		}
		if backoff *= 2; backoff > time.Second {
			backoff = time.Second
		}
	}
}
