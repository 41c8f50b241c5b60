package nof0adapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"enginestore"
	"enginestore/internal/livetest"
)

// Integration tests through the adapter against the live service of clients/go/run-tests (ENGINE_STORE_SOCKET;
// without it they fail under CI and skip otherwise). Row counts come from Postgres when run-tests also exports
// ENGINE_STORE_PSQL and ENGINE_STORE_PG, and from the read RPCs always.

func liveClient(t *testing.T) *enginestore.Client {
	t.Helper()
	sock := livetest.Socket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *enginestore.Client
	livetest.Poll(t, "dial "+sock, 30*time.Second, func() (err error) {
		c, err = enginestore.Dial(ctx, sock, &enginestore.Options{ClientName: "nof0adapter-tests"})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func traderID(prefix string) string { return fmt.Sprintf("%s-%08x", prefix, rand.Uint32()) }

// eventually retries check for up to 5 s: cached reads may lag a commit.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	livetest.Poll(t, what, 5*time.Second, check)
}

// pgCount runs a count query with psql, the trader id bound as :'model'; ok is false without psql.
func pgCount(t *testing.T, query, model string) (n int, ok bool) {
	t.Helper()
	psql, conn := os.Getenv("ENGINE_STORE_PSQL"), os.Getenv("ENGINE_STORE_PG")
	if psql == "" || conn == "" {
		return 0, false
	}
	cmd := exec.Command(psql, conn, "-XAtq", "-v", "ON_ERROR_STOP=1", "-v", "model="+model)
	cmd.Stdin = strings.NewReader(query + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v: %s", query, err, out)
	}
	n, err = strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("psql %q: %q", query, out)
	}
	return n, true
}

func wantRows(t *testing.T, what, query, model string, want int) {
	t.Helper()
	if n, ok := pgCount(t, query, model); ok && n != want {
		t.Errorf("%s: %d rows in Postgres, want %d", what, n, want)
	} else if ok {
		t.Logf("%s: %d rows in Postgres", what, n)
	}
}

func TestIntegrationNof0OpenClose(t *testing.T) {
	c, ctx := liveClient(t), livetest.Ctx(t)
	var mu sync.Mutex
	var closes []*enginestore.ClosePositionResponse
	opts := &Options{OnClose: func(_ PositionEvent, r *enginestore.ClosePositionResponse) {
		mu.Lock()
		closes = append(closes, r)
		mu.Unlock()
	}}
	a := New(c, opts)
	trader := traderID("nof0-oc")
	at := time.Now().Add(-time.Minute)
	open := PositionEvent{TraderID: trader, Trader: &VirtualTrader{ID: trader, Exchange: "hyperliquid"},
		Decision: Decision{Symbol: "btc", Action: "open_long", Leverage: 5, PositionSizeUSD: 200, Confidence: 80},
		Event:    PositionEventOpen, OccurredAt: at, FillPrice: 100, FillSize: 2,
		ExchangeResponse: &OrderResponse{Status: "ok", Response: OrderResponseData{Data: OrderResponseDataDetail{
			Statuses: []OrderStatusResponse{{Filled: &FilledOrder{TotalSz: "2", AvgPx: "100", Oid: 77}}}}}}}
	o1, err := a.OpenPosition(ctx, open)
	if err != nil || !o1.Opened || o1.Replayed {
		t.Fatalf("open: %+v %v", o1, err)
	}
	// A restarted engine replays the event: a new adapter (as after a restart), written once.
	o2, err := New(c, nil).OpenPosition(ctx, open)
	if err != nil || !o2.Replayed || o2.PositionID != o1.PositionID || o2.IdempotencyKey != o1.IdempotencyKey {
		t.Fatalf("replayed open: %+v %v (first %+v)", o2, err, o1)
	}
	eventually(t, "open position", func() error {
		r, err := c.GetOpenPositions(ctx, trader)
		if err != nil {
			return err
		}
		if len(r.Positions) != 1 || r.Positions[0].Symbol != "BTC" || r.Positions[0].Quantity != 2 ||
			r.Positions[0].EntryPrice != 100 || r.Positions[0].Exchange != "hyperliquid" ||
			r.Positions[0].Confidence == nil || *r.Positions[0].Confidence != 80 {
			return fmt.Errorf("%+v", r.Positions)
		}
		return nil
	})

	// Partial close (CloseFillSize): 0.5 at 110 → gross = net = 5 (no commissions), 1.5 stays open.
	sized := New(c, &Options{CloseFillSize: true, OnClose: opts.OnClose})
	part := open
	part.Event, part.Decision.Action, part.OccurredAt, part.FillPrice, part.FillSize = PositionEventClose, "close_long",
		at.Add(10*time.Second), 110, 0.5
	part.ExchangeResponse = nil
	p1, err := sized.ClosePosition(ctx, part)
	if err != nil || p1.FullyClosed || p1.ClosedSize != 0.5 || p1.RemainingSize != 1.5 || p1.RealizedGrossPnl != 5 ||
		p1.RealizedNetPnl != 5 || p1.TotalCommission != 0 || p1.Replayed {
		t.Fatalf("partial close: %+v %v", p1, err)
	}
	if err := New(c, &Options{CloseFillSize: true, OnClose: opts.OnClose}).RecordPositionEvent(ctx, part); err != nil {
		t.Fatal(err) // the replay, through the nof0 interface
	}
	// A fill size above the open size is refused, permanently.
	over := part
	over.OccurredAt, over.FillSize = at.Add(15*time.Second), 5
	if _, err := sized.ClosePosition(ctx, over); enginestore.CodeOf(err) != enginestore.CodeInvalidArgument || IsRetryable(err) {
		t.Fatalf("oversized close: %v", err)
	}
	// Default: the close event closes the whole open size (1.5 at 120 → 30), whatever its fill size.
	full := part
	full.OccurredAt, full.FillPrice, full.FillSize = at.Add(20*time.Second), 120, 1.4999
	f1, err := a.ClosePosition(ctx, full)
	if err != nil || !f1.FullyClosed || f1.ClosedSize != 1.5 || f1.RealizedGrossPnl != 30 || f1.Replayed {
		t.Fatalf("full close: %+v %v", f1, err)
	}
	f2, err := a.ClosePosition(ctx, full)
	if err != nil || !f2.Replayed || f2.TradeRowID != f1.TradeRowID || f2.ClosedSize != 1.5 {
		t.Fatalf("replayed full close: %+v %v", f2, err)
	}
	mu.Lock()
	if len(closes) != 4 || !closes[1].Replayed || closes[1].TradeRowID != p1.TradeRowID || closes[1].RealizedNetPnl != 5 {
		t.Errorf("OnClose saw %d closes: %+v", len(closes), closes)
	}
	mu.Unlock()

	eventually(t, "two trades, nothing open", func() error {
		tr, err := c.GetRecentTrades(ctx, trader, 10)
		if err != nil {
			return err
		}
		op, err := c.GetOpenPositions(ctx, trader)
		if err != nil {
			return err
		}
		if len(tr.Trades) != 2 || len(op.Positions) != 0 {
			return fmt.Errorf("trades %+v open %+v", tr.Trades, op.Positions)
		}
		pnl := tr.Trades[0].RealizedPnl + tr.Trades[1].RealizedPnl
		if pnl != 35 {
			return fmt.Errorf("realized pnl %v, want 35", pnl)
		}
		return nil
	})
	wantRows(t, "trades", "SELECT count(*) FROM trades WHERE model_id = :'model'", trader, 2)
	wantRows(t, "positions", "SELECT count(*) FROM positions WHERE model_id = :'model'", trader, 1)

	// Closing what is not open: not_found, permanent.
	none := full
	none.Decision.Symbol, none.OccurredAt = "ETH", at.Add(30*time.Second)
	_, err = a.ClosePosition(ctx, none)
	var ae *Error
	if !errors.As(err, &ae) || enginestore.CodeOf(err) != enginestore.CodeNotFound || IsRetryable(err) || ae.Symbol != "ETH" {
		t.Fatalf("close without position: %v", err)
	}
}

func TestIntegrationNof0DecisionSnapshotAnalytics(t *testing.T) {
	c, ctx := liveClient(t), livetest.Ctx(t)
	a := New(c, nil)
	trader := traderID("nof0-dsa")
	at := time.Now().Add(-time.Minute)

	cycle := DecisionCycleRecord{TraderID: trader, Cycle: &CycleRecord{Timestamp: at, TraderID: trader, CycleNumber: 3,
		PromptDigest: "d1", CoTTrace: "reasoning", Success: true,
		DecisionsJSON: `[{"Symbol":"eth","Action":"open_short","Leverage":3,"PositionSizeUSD":50,"EntryPrice":0,"StopLoss":0,"TakeProfit":0,"Confidence":72,"RiskUSD":0,"Reasoning":"r","InvalidationCondition":""}]`}}
	d1, err := a.DecisionCycle(ctx, cycle)
	if err != nil || d1.ID == 0 || d1.ExecutedAtMs != at.UnixMilli() || d1.Replayed {
		t.Fatalf("decision: %+v %v", d1, err)
	}
	d2, err := New(c, nil).DecisionCycle(ctx, cycle)
	if err != nil || !d2.Replayed || d2.ID != d1.ID {
		t.Fatalf("replayed decision: %+v %v", d2, err)
	}
	last, err := c.GetLastDecision(ctx, trader)
	if err != nil || !last.Success || last.Symbol == nil || *last.Symbol != "ETH" || last.Action == nil ||
		*last.Action != "open_short" || last.Confidence == nil || *last.Confidence != 72 {
		t.Fatalf("last decision: %+v %v", last, err)
	}
	wantRows(t, "decision_cycles", "SELECT count(*) FROM decision_cycles WHERE model_id = :'model'", trader, 1)

	snap := AccountSyncSnapshot{TraderID: trader, EquityUSD: 1000, MarginUsedUSD: 100, AvailableBalanceUSD: 900,
		UnrealizedPnLUSD: -20, SyncedAt: at}
	s1, err := a.AccountSnapshot(ctx, snap)
	if err != nil || len(s1.Results) != 1 || !s1.Results[0].Stored || s1.Replayed {
		t.Fatalf("snapshot: %+v %v", s1, err)
	}
	s2, err := a.AccountSnapshot(ctx, snap)
	if err != nil || !s2.Replayed {
		t.Fatalf("replayed snapshot: %+v %v", s2, err)
	}
	// A sync one minute later is throttled by the service (stored = false): not an error.
	snap.SyncedAt = at.Add(time.Minute)
	if err := a.RecordAccountSnapshot(ctx, snap); err != nil {
		t.Fatalf("throttled snapshot: %v", err)
	}
	wantRows(t, "account_equity_snapshots", "SELECT count(*) FROM account_equity_snapshots WHERE model_id = :'model'", trader, 1)

	an := AnalyticsSnapshot{TraderID: trader, TotalPnLUSD: 123, TotalPnLPct: 12.3, SharpeRatio: 1.1, WinRate: 0.5,
		TotalTrades: 4, MaxDrawdownPct: 3, UpdatedAt: at}
	a1, err := a.Analytics(ctx, an)
	if err != nil || a1.Updated != 1 || a1.Replayed {
		t.Fatalf("analytics: %+v %v", a1, err)
	}
	a2, err := a.Analytics(ctx, an)
	if err != nil || !a2.Replayed || a2.Updated != 1 {
		t.Fatalf("replayed analytics: %+v %v", a2, err)
	}
	eventually(t, "leaderboard entry", func() error {
		lb, err := c.GetLeaderboard(ctx, 1000)
		if err != nil {
			return err
		}
		for _, e := range lb.Entries {
			if e.ModelID == trader {
				if e.Score != 12.3 {
					return fmt.Errorf("score %v", e.Score)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not in %d entries", trader, len(lb.Entries))
	})
	wantRows(t, "model_analytics", "SELECT count(*) FROM model_analytics WHERE model_id = :'model'", trader, 1)
}

func TestIntegrationNof0Hydrate(t *testing.T) {
	c, ctx := liveClient(t), livetest.Ctx(t)
	a := New(c, &Options{HydrateWait: 30 * time.Second})
	trader := traderID("nof0-hy")
	open := PositionEvent{TraderID: trader, Decision: Decision{Symbol: "SOL", Action: "open_long"},
		Event: PositionEventOpen, OccurredAt: time.Now().Add(-time.Minute), FillPrice: 20, FillSize: 3}
	if err := a.RecordPositionEvent(ctx, open); err != nil {
		t.Fatal(err)
	}
	if r, err := a.Hydrate(ctx, nil); r != nil || err != nil {
		t.Fatalf("hydrate of no traders: %+v %v", r, err)
	}
	r, err := a.Hydrate(ctx, []string{trader, " " + trader})
	if err != nil || !r.Ran || r.Models != 1 || r.KeysWritten == 0 {
		t.Fatalf("hydrate: %+v %v", r, err)
	}
	if err := a.HydrateCaches(ctx, []string{trader}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "hydrated position", func() error {
		p, err := c.GetOpenPositions(ctx, trader)
		if err != nil {
			return err
		}
		if len(p.Positions) != 1 || p.Positions[0].Quantity != 3 || p.Positions[0].Exchange != "unknown" {
			return fmt.Errorf("%+v", p)
		}
		return nil
	})
}

// Method 39 is implemented by the server side of issue 16. Against a server that does not advertise it, the test
// is not run, unless ENGINE_STORE_EXPECT_CONVERSATIONS=1 (then it fails).
func TestIntegrationNof0Conversation(t *testing.T) {
	c, ctx := liveClient(t), livetest.Ctx(t)
	if !c.Supports(enginestore.MethodRecordConversation) {
		if os.Getenv("ENGINE_STORE_EXPECT_CONVERSATIONS") == "1" {
			t.Fatalf("ENGINE_STORE_EXPECT_CONVERSATIONS=1 but the server does not advertise RecordConversation "+
				"(method 39) in HelloOk's methods %v", c.ServerInfo().Methods)
		}
		t.Skipf("not run: the server does not advertise RecordConversation (method 39); methods %v",
			c.ServerInfo().Methods)
	}
	a := New(c, nil)
	trader := traderID("nof0-conv")
	rec := ConversationRecord{ModelID: trader, Prompt: "Decide for BTC.", PromptTokens: 12,
		Response: "hold", CompletionTokens: 1, TotalTokens: 13, ModelName: "gpt-test",
		Timestamp: time.Now().Add(-time.Minute), Topic: "cycle"}
	r1, err := a.Conversation(ctx, rec)
	if err != nil || r1.ConversationID <= 0 || r1.Replayed {
		t.Fatalf("conversation: %+v %v", r1, err)
	}
	r2, err := New(c, nil).Conversation(ctx, rec)
	if err != nil || !r2.Replayed || r2.ConversationID != r1.ConversationID {
		t.Fatalf("replayed conversation: %+v %v", r2, err)
	}
	if err := a.RecordConversation(ctx, ConversationRecord{ModelID: trader, Prompt: "no answer",
		Timestamp: rec.Timestamp.Add(time.Second)}); err != nil {
		t.Fatalf("conversation without response: %v", err)
	}
	wantRows(t, "conversations", "SELECT count(*) FROM conversations WHERE model_id = :'model'", trader, 2)
	wantRows(t, "conversation_messages", "SELECT count(*) FROM conversation_messages m JOIN conversations c "+
		"ON c.id = m.conversation_id WHERE c.model_id = :'model'", trader, 3)
}
