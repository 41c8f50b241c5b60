package nof0adapter

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"enginestore"
)

// Request builders: each turns one nof0 event into one EngineStore request, using nothing but the event (and the
// clock, only when the event's own time is zero). So an event recorded twice, e.g. replayed by a restarted engine,
// gives the same request bytes and the same idempotency key, and the service writes it once (proto-spec §9).
// A nil request with a nil error: nof0's own persistence ignores such an event too (no trader id, no symbol…).

// ErrInvalidEvent: the event lacks what EngineStore needs (an open without price or size, a close without a price,
// a value JSON cannot carry). Recording it again fails the same way.
var ErrInvalidEvent = errors.New("nof0adapter: invalid event")

func invalid(format string, a ...interface{}) error {
	return fmt.Errorf("%w: %s", ErrInvalidEvent, fmt.Sprintf(format, a...))
}

// keyFor derives the idempotency key: a digest of the event kind, the event time in nanoseconds (finer than the
// request's milliseconds, so two events in one millisecond stay two) and the canonical request payload with an
// empty key (trader, symbol, prices, sizes, fill ids: everything the request says). Same event → same key and same
// bytes; a different request can never reuse a key (no `conflict`).
func keyFor(kind string, at time.Time, req interface{}) string {
	h := sha256.New()
	h.Write([]byte("nof0adapter/v1\x00" + kind + "\x00"))
	var ns [8]byte
	binary.BigEndian.PutUint64(ns[:], uint64(at.UnixNano()))
	h.Write(ns[:])
	h.Write(enginestore.Marshal(req))
	return "nof0-" + kind + "-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (a *Adapter) when(t time.Time) time.Time {
	if t.IsZero() {
		return a.opts.Now()
	}
	return t
}

func eventTrader(ev *PositionEvent) string {
	if id := strings.TrimSpace(ev.TraderID); id != "" {
		return id
	}
	if ev.Trader != nil {
		return strings.TrimSpace(ev.Trader.ID)
	}
	return ""
}

// fill returns the first filled status of the exchange's answer (price, size, order id), or the resting order id.
func fill(r *OrderResponse) (px, sz float64, oid int64) {
	if r == nil {
		return 0, 0, 0
	}
	for _, st := range r.Response.Data.Statuses {
		if st.Filled != nil {
			px, _ = strconv.ParseFloat(strings.TrimSpace(st.Filled.AvgPx), 64)
			sz, _ = strconv.ParseFloat(strings.TrimSpace(st.Filled.TotalSz), 64)
			return px, sz, st.Filled.Oid
		}
		if st.Resting != nil && oid == 0 {
			oid = st.Resting.Oid
		}
	}
	return 0, 0, oid
}

func positive(v float64) bool { return v > 0 && !math.IsInf(v, 0) }

// price is nof0's effectivePrice: the event's fill price, else the decision's entry price, else the exchange fill.
func price(ev *PositionEvent) float64 {
	exPx, _, _ := fill(ev.ExchangeResponse)
	for _, p := range []float64{ev.FillPrice, ev.Decision.EntryPrice, exPx} {
		if positive(p) {
			return p
		}
	}
	return 0
}

// position gives what opens and closes share: trader, symbol, time and price. model == "" → an event nof0 ignores.
func (a *Adapter) position(op string, ev *PositionEvent) (model, symbol string, at time.Time, px float64, err error) {
	model, symbol = eventTrader(ev), strings.ToUpper(strings.TrimSpace(ev.Decision.Symbol))
	if model == "" || symbol == "" {
		return "", "", at, 0, nil
	}
	if px = price(ev); px <= 0 {
		return "", "", at, 0, invalid("%s %s/%s: no fill price", op, model, symbol)
	}
	return model, symbol, a.when(ev.OccurredAt), px, nil
}

func optOid(oid int64) *int64 {
	if oid > 0 {
		return &oid
	}
	return nil
}

type exitPlan struct {
	StopLoss              float64 `json:"stop_loss,omitempty"`
	TakeProfit            float64 `json:"take_profit,omitempty"`
	InvalidationCondition string  `json:"invalidation_condition,omitempty"`
}

// OpenRequest maps an open event to SavePosition.
func (a *Adapter) OpenRequest(ev PositionEvent) (*enginestore.SavePositionRequest, error) {
	model, symbol, at, px, err := a.position("open", &ev)
	if model == "" || err != nil {
		return nil, err
	}
	_, exSz, oid := fill(ev.ExchangeResponse)
	qty := ev.FillSize
	if !positive(qty) {
		qty = exSz
	}
	if !positive(qty) {
		qty = ev.Decision.PositionSizeUSD / px
	}
	if !positive(qty) {
		return nil, invalid("open %s/%s: no fill size", model, symbol)
	}
	side := enginestore.Long
	if strings.EqualFold(ev.Decision.Action, "open_short") {
		side = enginestore.Short
	}
	exchange := a.opts.DefaultExchange
	if ev.Trader != nil && strings.TrimSpace(ev.Trader.Exchange) != "" {
		exchange = strings.TrimSpace(ev.Trader.Exchange)
	}
	req := &enginestore.SavePositionRequest{ModelID: model, Symbol: symbol, ExchangeProvider: &exchange,
		Side: &side, Quantity: &qty, EntryPrice: &px, EntryTimeMs: enginestore.Ptr(at.UnixMilli()),
		EntryOid: optOid(oid)}
	d := ev.Decision
	if d.Leverage > 0 {
		req.Leverage = enginestore.Ptr(float64(d.Leverage))
	}
	if d.Confidence > 0 {
		req.Confidence = enginestore.Ptr(float64(d.Confidence))
	}
	if d.RiskUSD != 0 {
		req.RiskUSD = enginestore.Ptr(d.RiskUSD)
	}
	plan := exitPlan{InvalidationCondition: strings.TrimSpace(d.InvalidationCondition)}
	if positive(d.StopLoss) {
		plan.StopLoss = d.StopLoss
	}
	if positive(d.TakeProfit) {
		plan.TakeProfit = d.TakeProfit
	}
	if plan != (exitPlan{}) {
		b, err := marshalJSON(plan)
		if err != nil {
			return nil, invalid("open %s/%s: exit plan: %v", model, symbol, err)
		}
		req.ExitPlanJSON = &b
	}
	req.IdempotencyKey = keyFor("open", at, req)
	return req, nil
}

// CloseRequest maps a close event to ClosePosition at the fill price. exit_size is sent only with
// Options.CloseFillSize (the event's fill size, else the exchange's); otherwise the whole open size is closed, as
// nof0's close action does on the exchange and nof0's own persistence does in Postgres.
func (a *Adapter) CloseRequest(ev PositionEvent) (*enginestore.ClosePositionRequest, error) {
	model, symbol, at, px, err := a.position("close", &ev)
	if model == "" || err != nil {
		return nil, err
	}
	_, exSz, oid := fill(ev.ExchangeResponse)
	req := &enginestore.ClosePositionRequest{ModelID: model, Symbol: symbol, ExitPrice: px,
		ExitTimeMs: at.UnixMilli(), ExitOid: optOid(oid)}
	switch {
	case !a.opts.CloseFillSize:
	case positive(ev.FillSize):
		req.ExitSize = enginestore.Ptr(ev.FillSize)
	case positive(exSz):
		req.ExitSize = enginestore.Ptr(exSz)
	}
	req.IdempotencyKey = keyFor("close", at, req)
	return req, nil
}

// DecisionRequest maps a decision cycle to RecordDecisionCycle.
func (a *Adapter) DecisionRequest(rec DecisionCycleRecord) (*enginestore.RecordDecisionCycleRequest, error) {
	c := rec.Cycle
	if c == nil {
		return nil, nil
	}
	model := strings.TrimSpace(rec.TraderID)
	if model == "" {
		model = strings.TrimSpace(c.TraderID)
	}
	if model == "" {
		return nil, nil
	}
	at := a.when(c.Timestamp)
	req := &enginestore.RecordDecisionCycleRequest{ModelID: model, Success: c.Success,
		ExecutedAtMs: enginestore.Ptr(at.UnixMilli())}
	if c.CycleNumber > 0 {
		req.CycleNumber = enginestore.Ptr(int64(c.CycleNumber))
	}
	req.PromptDigest = nonBlank(c.PromptDigest)
	req.CotTrace = nonBlank(c.CoTTrace)
	req.ErrorMessage = nonBlank(c.ErrorMessage)
	switch {
	case strings.TrimSpace(c.DecisionsJSON) != "":
		req.DecisionsJSON = enginestore.Ptr(decisionKeys(c.DecisionsJSON))
	case len(c.Actions) > 0:
		b, err := marshalJSON(c.Actions)
		if err != nil {
			return nil, invalid("decision %s: actions: %v", model, err)
		}
		req.DecisionsJSON = &b
	}
	req.IdempotencyKey = keyFor("decision", at, req)
	return req, nil
}

// nof0 encodes []executor.Decision without JSON tags, so its keys are Go field names ("Symbol", "Action", …).
// EngineStore reads the first decision's "symbol", "action" and "confidence" (GetLastDecision), so those keys are
// renamed to snake_case; values and other keys stay. Anything that is not an array of objects is sent verbatim.
var decisionFieldNames = map[string]string{
	"Symbol": "symbol", "Action": "action", "Leverage": "leverage", "PositionSizeUSD": "position_size_usd",
	"EntryPrice": "entry_price", "StopLoss": "stop_loss", "TakeProfit": "take_profit", "Confidence": "confidence",
	"RiskUSD": "risk_usd", "Reasoning": "reasoning", "InvalidationCondition": "invalidation_condition",
}

func decisionKeys(s string) string {
	var items []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &items); err != nil {
		return s
	}
	renamed := false
	for i, item := range items {
		if item == nil {
			return s
		}
		out := make(map[string]json.RawMessage, len(item))
		for k, v := range item {
			if n, ok := decisionFieldNames[k]; ok {
				if _, clash := item[n]; !clash {
					k, renamed = n, true
				}
			}
			out[k] = v
		}
		items[i] = out
	}
	if !renamed {
		return s
	}
	b, err := marshalJSON(items)
	if err != nil {
		return s
	}
	return b
}

// SnapshotRequest maps an account sync to SaveSnapshot (one snapshot, no marks), with nof0's columns: equity,
// unrealized PnL, cum_pnl_pct = unrealized / equity × 100, and balances in metadata.
func (a *Adapter) SnapshotRequest(s AccountSyncSnapshot) (*enginestore.SaveSnapshotRequest, error) {
	model := strings.TrimSpace(s.TraderID)
	if model == "" {
		return nil, nil
	}
	at := a.when(s.SyncedAt)
	meta, err := marshalJSON(struct {
		AvailableBalanceUSD float64 `json:"available_balance_usd"`
		MarginUsedUSD       float64 `json:"margin_used_usd"`
		UnrealizedPnLUSD    float64 `json:"unrealized_pnl_usd"`
	}{s.AvailableBalanceUSD, s.MarginUsedUSD, s.UnrealizedPnLUSD})
	if err != nil {
		return nil, invalid("snapshot %s: %v", model, err)
	}
	snap := enginestore.AccountSnapshot{ModelID: model, TimestampMs: at.UnixMilli(), DollarEquity: s.EquityUSD,
		TotalUnrealizedPnl: enginestore.Ptr(s.UnrealizedPnLUSD), MetadataJSON: &meta}
	if pct := s.UnrealizedPnLUSD / s.EquityUSD * 100; s.EquityUSD != 0 && !math.IsNaN(pct) && !math.IsInf(pct, 0) {
		snap.CumPnlPct = &pct
	}
	req := &enginestore.SaveSnapshotRequest{Snapshots: []enginestore.AccountSnapshot{snap}}
	req.IdempotencyKey = keyFor("snapshot", at, req)
	return req, nil
}

// AnalyticsRequest maps performance metrics to UpdateAnalytics, with nof0's payload keys; server_time_ms (the
// payload's version) is UpdatedAt.
func (a *Adapter) AnalyticsRequest(s AnalyticsSnapshot) (*enginestore.UpdateAnalyticsRequest, error) {
	model := strings.TrimSpace(s.TraderID)
	if model == "" {
		return nil, nil
	}
	at := a.when(s.UpdatedAt)
	payload, err := marshalJSON(struct {
		TotalPnLUSD    float64 `json:"total_pnl_usd"`
		TotalPnLPct    float64 `json:"total_pnl_pct"`
		SharpeRatio    float64 `json:"sharpe_ratio"`
		WinRate        float64 `json:"win_rate"`
		TotalTrades    int     `json:"total_trades"`
		MaxDrawdownPct float64 `json:"max_drawdown_pct"`
		UpdatedAt      string  `json:"updated_at_rfc3339"`
	}{s.TotalPnLUSD, s.TotalPnLPct, s.SharpeRatio, s.WinRate, s.TotalTrades, s.MaxDrawdownPct,
		at.UTC().Format(time.RFC3339)})
	if err != nil {
		return nil, invalid("analytics %s: %v", model, err)
	}
	req := &enginestore.UpdateAnalyticsRequest{Entries: []enginestore.ModelAnalytics{{ModelID: model,
		PayloadJSON: payload, ServerTimeMs: at.UnixMilli()}}}
	req.IdempotencyKey = keyFor("analytics", at, req)
	return req, nil
}

// ConversationRequest maps an executor → LLM exchange to RecordConversation. A blank response is sent as absent
// (the prompt alone is stored); zero token counts are not sent.
func (a *Adapter) ConversationRequest(rec ConversationRecord) (*enginestore.RecordConversationRequest, error) {
	model := strings.TrimSpace(rec.ModelID)
	if model == "" || strings.TrimSpace(rec.Prompt) == "" {
		return nil, nil
	}
	at := a.when(rec.Timestamp)
	req := &enginestore.RecordConversationRequest{ModelID: model, Prompt: rec.Prompt,
		Response: nonBlank(rec.Response), PromptTokens: tokens(rec.PromptTokens),
		CompletionTokens: tokens(rec.CompletionTokens), TotalTokens: tokens(rec.TotalTokens),
		ModelName: nonBlank(rec.ModelName), TimestampMs: enginestore.Ptr(at.UnixMilli()),
		Topic: nonBlank(strings.TrimSpace(rec.Topic))}
	req.IdempotencyKey = keyFor("conversation", at, req)
	return req, nil
}

// HydrateRequest: the trader ids, trimmed, deduplicated and sorted, as both models and traders. nil when none
// (EngineStore would read an empty request as "everything").
func HydrateRequest(traderIDs []string) *enginestore.HydrateRequest {
	seen := map[string]bool{}
	var ids []string
	for _, id := range traderIDs {
		if id = strings.TrimSpace(id); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	return &enginestore.HydrateRequest{Models: ids, Traders: ids}
}

func nonBlank(s string) *string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	return &s
}

func tokens(n int) *uint32 {
	if n <= 0 {
		return nil
	}
	v := uint32(math.MaxUint32)
	if uint64(n) < math.MaxUint32 {
		v = uint32(n)
	}
	return &v
}

// marshalJSON is json.Marshal without HTML escaping (deterministic: struct field order, sorted map keys).
func marshalJSON(v interface{}) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
