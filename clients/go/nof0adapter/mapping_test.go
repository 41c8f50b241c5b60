package nof0adapter

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"enginestore"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)

func fixed() *Adapter {
	return New(nil, &Options{Now: func() time.Time { return t0.Add(time.Hour) }})
}

func openEvent() PositionEvent {
	return PositionEvent{TraderID: "trader-1", Trader: &VirtualTrader{ID: "trader-1", Exchange: "hyperliquid"},
		Decision: Decision{Symbol: "btc", Action: "open_long", Leverage: 5, PositionSizeUSD: 1000, EntryPrice: 99,
			StopLoss: 90, TakeProfit: 120, Confidence: 80, RiskUSD: 25, InvalidationCondition: "close < 95"},
		Event: PositionEventOpen, OccurredAt: t0, FillPrice: 100, FillSize: 10,
		ExchangeResponse: &OrderResponse{Status: "ok", Response: OrderResponseData{Type: "order",
			Data: OrderResponseDataDetail{Statuses: []OrderStatusResponse{{Filled: &FilledOrder{TotalSz: "10",
				AvgPx: "100", Oid: 4242}}}}}}}
}

func mustBytes(t *testing.T, req interface{}, err error) []byte {
	t.Helper()
	if err != nil || req == nil {
		t.Fatalf("request %v, error %v", req, err)
	}
	return enginestore.Marshal(req)
}

func TestOpenMapping(t *testing.T) {
	a := fixed()
	req, err := a.OpenRequest(openEvent())
	mustBytes(t, req, err)
	if req.ModelID != "trader-1" || req.Symbol != "BTC" || *req.ExchangeProvider != "hyperliquid" ||
		*req.Side != enginestore.Long || *req.Quantity != 10 || *req.EntryPrice != 100 ||
		*req.EntryTimeMs != t0.UnixMilli() || *req.Leverage != 5 || *req.Confidence != 80 || *req.RiskUSD != 25 ||
		*req.EntryOid != 4242 {
		t.Fatalf("open request %+v", req)
	}
	if want := `{"stop_loss":90,"take_profit":120,"invalidation_condition":"close < 95"}`; *req.ExitPlanJSON != want {
		t.Errorf("exit plan %s, want %s", *req.ExitPlanJSON, want)
	}
	// Fallbacks, as nof0's effectivePrice / effectiveQuantity: decision price, exchange fill size, USD / price.
	ev := openEvent()
	ev.Decision.Action, ev.FillPrice, ev.FillSize, ev.Trader = "open_short", 0, 0, nil
	req, _ = a.OpenRequest(ev)
	if *req.Side != enginestore.Short || *req.EntryPrice != 99 || *req.Quantity != 10 || *req.ExchangeProvider != "unknown" {
		t.Errorf("fallbacks %+v", req)
	}
	ev.ExchangeResponse = nil
	req, _ = a.OpenRequest(ev)
	if *req.Quantity != 1000.0/99 || req.EntryOid != nil {
		t.Errorf("size from USD: %+v", req)
	}
	ev.Decision.EntryPrice = 0
	if _, err := a.OpenRequest(ev); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("open without price: %v", err)
	}
	// Ignored like nof0 does: no trader, no symbol.
	ev = openEvent()
	ev.TraderID, ev.Trader = "", nil
	if r, err := a.OpenRequest(ev); r != nil || err != nil {
		t.Errorf("no trader: %v %v", r, err)
	}
	ev = openEvent()
	ev.TraderID, ev.Decision.Symbol = "", " "
	if r, err := a.OpenRequest(ev); r != nil || err != nil {
		t.Errorf("no symbol: %v %v", r, err)
	}
}

func TestCloseMapping(t *testing.T) {
	whole, sized := fixed(), New(nil, &Options{CloseFillSize: true})
	ev := openEvent()
	ev.Event, ev.Decision.Action, ev.FillPrice, ev.FillSize = PositionEventClose, "close_long", 110, 4
	req, err := whole.CloseRequest(ev)
	mustBytes(t, req, err)
	if req.ExitPrice != 110 || req.ExitSize != nil || req.ExitTimeMs != t0.UnixMilli() || *req.ExitOid != 4242 ||
		req.Symbol != "BTC" || req.TradeType != nil || req.ExitCommission != nil {
		t.Fatalf("close %+v", req)
	}
	req, _ = sized.CloseRequest(ev)
	if *req.ExitSize != 4 {
		t.Errorf("fill size: %+v", req)
	}
	ev.FillSize = 0
	if req, _ = sized.CloseRequest(ev); *req.ExitSize != 10 {
		t.Errorf("size from the exchange fill: %+v", req)
	}
	ev.ExchangeResponse = nil
	if req, _ = sized.CloseRequest(ev); req.ExitSize != nil {
		t.Errorf("no size → whole position: %+v", req)
	}
	ev.FillPrice, ev.Decision.EntryPrice = 0, 0
	if _, err := whole.CloseRequest(ev); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("close without price: %v", err)
	}
}

// The same event gives the same key and byte-identical payload (§9.2: a replay is a retry); any difference in the
// event gives another key.
func TestKeysDeterministic(t *testing.T) {
	a, b := fixed(), New(nil, nil) // another adapter, as after a restart
	r1, _ := a.OpenRequest(openEvent())
	r2, _ := b.OpenRequest(openEvent())
	if r1.IdempotencyKey != r2.IdempotencyKey || !bytes.Equal(enginestore.Marshal(r1), enginestore.Marshal(r2)) {
		t.Fatalf("replay differs:\n%x\n%x", enginestore.Marshal(r1), enginestore.Marshal(r2))
	}
	// Pinned: a new derivation would make events recorded before an upgrade execute again when replayed after it.
	if want := "nof0-open-"; !strings.HasPrefix(r1.IdempotencyKey, want) || len(r1.IdempotencyKey) != len(want)+32 {
		t.Fatalf("key %q", r1.IdempotencyKey)
	}
	if r1.IdempotencyKey != pinnedOpenKey {
		t.Errorf("open key %s, pinned %s", r1.IdempotencyKey, pinnedOpenKey)
	}
	keys := map[string]string{r1.IdempotencyKey: "base"}
	for name, change := range map[string]func(*PositionEvent){
		"1 ns later":    func(e *PositionEvent) { e.OccurredAt = e.OccurredAt.Add(time.Nanosecond) },
		"other fill id": func(e *PositionEvent) { e.ExchangeResponse.Response.Data.Statuses[0].Filled.Oid++ },
		"other size":    func(e *PositionEvent) { e.FillSize = 11 },
		"other price":   func(e *PositionEvent) { e.FillPrice = 101 },
		"other trader":  func(e *PositionEvent) { e.TraderID = "trader-2" },
		"other symbol":  func(e *PositionEvent) { e.Decision.Symbol = "ETH" },
	} {
		ev := openEvent()
		change(&ev)
		r, _ := a.OpenRequest(ev)
		if prev, dup := keys[r.IdempotencyKey]; dup {
			t.Errorf("%s: same key as %s", name, prev)
		}
		keys[r.IdempotencyKey] = name
	}
	// Open and close of the same fill are different writes.
	ev := openEvent()
	ev.Event = PositionEventClose
	c, _ := a.CloseRequest(ev)
	if _, dup := keys[c.IdempotencyKey]; dup || !strings.HasPrefix(c.IdempotencyKey, "nof0-close-") {
		t.Errorf("close key %s", c.IdempotencyKey)
	}
	// A zero event time takes the clock: deterministic only under the same clock.
	ev = openEvent()
	ev.OccurredAt = time.Time{}
	z, _ := a.OpenRequest(ev)
	if *z.EntryTimeMs != t0.Add(time.Hour).UnixMilli() {
		t.Errorf("zero time → Now: %d", *z.EntryTimeMs)
	}
}

const pinnedOpenKey = "nof0-open-0a19fdd8142beea37a639f65975d1f79"

func TestDecisionMapping(t *testing.T) {
	a := fixed()
	cycle := &CycleRecord{Timestamp: t0, TraderID: "trader-1", CycleNumber: 7, PromptDigest: "abc", CoTTrace: "think",
		DecisionsJSON: `[{"Symbol":"btc","Action":"open_long","Leverage":5,"PositionSizeUSD":1000,"EntryPrice":0,"StopLoss":0,"TakeProfit":0,"Confidence":80,"RiskUSD":0,"Reasoning":"<up> & away","InvalidationCondition":""}]`,
		Actions:       []map[string]any{{"symbol": "BTC", "action": "open_long", "result": "ok"}}, Success: true}
	req, err := a.DecisionRequest(DecisionCycleRecord{Cycle: cycle})
	mustBytes(t, req, err)
	want := `[{"action":"open_long","confidence":80,"entry_price":0,"invalidation_condition":"","leverage":5,"position_size_usd":1000,"reasoning":"<up> & away","risk_usd":0,"stop_loss":0,"symbol":"btc","take_profit":0}]`
	if req.ModelID != "trader-1" || *req.CycleNumber != 7 || *req.PromptDigest != "abc" || *req.CotTrace != "think" ||
		!req.Success || req.ErrorMessage != nil || *req.ExecutedAtMs != t0.UnixMilli() || *req.DecisionsJSON != want {
		t.Fatalf("decision %+v\n%s", req, *req.DecisionsJSON)
	}
	for _, verbatim := range []string{`{"Symbol":"BTC"}`, `[1,2]`, `[{"symbol":"x"}]`, `not json`} {
		if got := decisionKeys(verbatim); got != verbatim {
			t.Errorf("%s → %s", verbatim, got)
		}
	}
	cycle.DecisionsJSON, cycle.Success, cycle.ErrorMessage = "", false, "llm timeout"
	req, _ = a.DecisionRequest(DecisionCycleRecord{TraderID: "trader-9", Cycle: cycle})
	if req.ModelID != "trader-9" || *req.DecisionsJSON != `[{"action":"open_long","result":"ok","symbol":"BTC"}]` ||
		*req.ErrorMessage != "llm timeout" {
		t.Errorf("actions fallback %+v %s", req, *req.DecisionsJSON)
	}
	if r, err := a.DecisionRequest(DecisionCycleRecord{TraderID: "x"}); r != nil || err != nil {
		t.Error("nil cycle not ignored")
	}
}

func TestSnapshotAnalyticsConversationMapping(t *testing.T) {
	a := fixed()
	s, err := a.SnapshotRequest(AccountSyncSnapshot{TraderID: "trader-1", EquityUSD: 1000, MarginUsedUSD: 200,
		AvailableBalanceUSD: 800, UnrealizedPnLUSD: 50, SyncedAt: t0})
	mustBytes(t, s, err)
	sn := s.Snapshots[0]
	if len(s.Snapshots) != 1 || sn.ModelID != "trader-1" || sn.TimestampMs != t0.UnixMilli() || sn.DollarEquity != 1000 ||
		*sn.TotalUnrealizedPnl != 50 || *sn.CumPnlPct != 5 ||
		*sn.MetadataJSON != `{"available_balance_usd":800,"margin_used_usd":200,"unrealized_pnl_usd":50}` {
		t.Errorf("snapshot %+v", sn)
	}
	if s, _ = a.SnapshotRequest(AccountSyncSnapshot{TraderID: "t", SyncedAt: t0}); s.Snapshots[0].CumPnlPct != nil {
		t.Error("cum_pnl_pct with zero equity")
	}

	an, err := a.AnalyticsRequest(AnalyticsSnapshot{TraderID: "trader-1", TotalPnLUSD: 12.5, TotalPnLPct: 1.25,
		SharpeRatio: 0.5, WinRate: 0.6, TotalTrades: 3, MaxDrawdownPct: 2, UpdatedAt: t0})
	mustBytes(t, an, err)
	if e := an.Entries[0]; e.ModelID != "trader-1" || e.ServerTimeMs != t0.UnixMilli() || e.MetadataJSON != nil ||
		e.PayloadJSON != `{"total_pnl_usd":12.5,"total_pnl_pct":1.25,"sharpe_ratio":0.5,"win_rate":0.6,"total_trades":3,"max_drawdown_pct":2,"updated_at_rfc3339":"2026-11-27T12:00:00Z"}` {
		t.Errorf("analytics %+v", e)
	}

	c, err := a.ConversationRequest(ConversationRecord{ModelID: "trader-1", Prompt: "p", PromptTokens: 10,
		Response: "  ", TotalTokens: 10, ModelName: "gpt", Timestamp: t0, Topic: " cycle "})
	mustBytes(t, c, err)
	if c.Response != nil || *c.PromptTokens != 10 || c.CompletionTokens != nil || *c.TotalTokens != 10 ||
		*c.ModelName != "gpt" || *c.TimestampMs != t0.UnixMilli() || *c.Topic != "cycle" ||
		!strings.HasPrefix(c.IdempotencyKey, "nof0-conversation-") {
		t.Errorf("conversation %+v", c)
	}
	if c, err := a.ConversationRequest(ConversationRecord{ModelID: "m", Prompt: " "}); c != nil || err != nil {
		t.Error("blank prompt not ignored")
	}

	h := HydrateRequest([]string{" b", "a", "b", ""})
	if strings.Join(h.Models, ",") != "a,b" || strings.Join(h.Traders, ",") != "a,b" || HydrateRequest([]string{" "}) != nil {
		t.Errorf("hydrate %+v", h)
	}
}

func TestErrorClasses(t *testing.T) {
	for _, c := range []struct {
		err       error
		retryable bool
	}{
		{&enginestore.Error{Code: enginestore.CodeUnavailable, Retryable: true}, true},
		{&enginestore.Error{Code: enginestore.CodeInternal, ConnectionLost: true}, true},
		{&enginestore.Error{Code: enginestore.CodeDeadlineExceeded, Retryable: true, Local: true}, true},
		{&enginestore.Error{Code: enginestore.CodeInvalidArgument, Field: "quantity"}, false},
		{&enginestore.Error{Code: enginestore.CodeNotFound}, false},
		{invalid("x"), false},
	} {
		err := wrap("close", "t", "BTC", c.err)
		if IsRetryable(err) != c.retryable || !errors.Is(err, c.err) {
			t.Errorf("%v: retryable %v", err, IsRetryable(err))
		}
	}
	if wrap("open", "t", "", nil) != nil {
		t.Error("nil error wrapped")
	}
}
