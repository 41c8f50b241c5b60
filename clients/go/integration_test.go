package enginestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"enginestore/internal/livetest"
)

// Integration tests run against a live service whose socket is in ENGINE_STORE_SOCKET (clients/go/run-tests
// starts one with its own Postgres and Redis). Without it they fail under CI=true and skip otherwise.

func serviceSocket(t *testing.T) string { return livetest.Socket(t) }

func dialService(t *testing.T, path string, opts *Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var c *Client
	livetest.Poll(t, "dial "+path, 30*time.Second, func() (err error) { c, err = Dial(ctx, path, opts); return err })
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context { return livetest.Ctx(t) }

var uniqCounter int64

func uniq(prefix string) string {
	return fmt.Sprintf("%s-%s-%d", prefix, NewIdempotencyKey()[:8], atomic.AddInt64(&uniqCounter, 1))
}

func nowMs() int64 { return time.Now().UnixMilli() }

// poll retries check for up to 5 s: reads answered from the cache may lag a commit (§10.6).
func poll(t *testing.T, what string, check func() error) {
	t.Helper()
	livetest.Poll(t, what, 5*time.Second, check)
}

func mustCode(t *testing.T, err error, code ErrorCode, field string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want %s error, got %v", code, err)
	}
	if e.Code != code || e.Field != field {
		t.Fatalf("want %s field %q, got %s field %q (%v)", code, field, e.Code, e.Field, err)
	}
	return e
}

func openReq(model, symbol string, side PositionSide, qty, price, commission float64) *SavePositionRequest {
	return &SavePositionRequest{ModelID: model, Symbol: symbol, ExchangeProvider: Ptr("hyperliquid"),
		Side: Ptr(side), Quantity: Ptr(qty), EntryPrice: Ptr(price), EntryTimeMs: Ptr(nowMs() - 60000),
		Leverage: Ptr(5.0), Confidence: Ptr(0.75), Commission: Ptr(commission)}
}

func TestIntegrationHandshake(t *testing.T) {
	c := dialService(t, serviceSocket(t), &Options{ClientName: "go-tests"})
	info := c.ServerInfo()
	if info.Version != 1 || info.MaxFrameBytes < 14 {
		t.Fatalf("HelloOk %+v", info)
	}
	have := map[uint64]bool{}
	for _, m := range info.Methods {
		have[m] = true
	}
	for m := range requestTypes {
		if m == MethodRecordConversation && os.Getenv("ENGINE_STORE_EXPECT_CONVERSATIONS") != "1" {
			continue // not every server has method 39 yet (see TestIntegrationNof0Conversation)
		}
		if !have[uint64(m)] {
			t.Errorf("method %d not advertised (%v)", m, info.Methods)
		}
	}
}

func TestIntegrationPositionLifecycle(t *testing.T) {
	c := dialService(t, serviceSocket(t), nil)
	ctx := testCtx(t)
	model := uniq("go-life")

	open, err := c.SavePosition(ctx, openReq(model, "btc", Long, 1, 100, 2))
	if err != nil {
		t.Fatal(err)
	}
	if !open.Opened || open.PositionID == "" || open.Replayed || open.IdempotencyKey == "" {
		t.Fatalf("open: %+v", open)
	}
	upd, err := c.SavePosition(ctx, &SavePositionRequest{ModelID: model, Symbol: "BTC", CurrentPrice: Ptr(105.0),
		UnrealizedPnl: Ptr(5.0)})
	if err != nil {
		t.Fatal(err)
	}
	if upd.Opened || upd.PositionID != open.PositionID {
		t.Fatalf("update: %+v (open %+v)", upd, open)
	}
	poll(t, "open position after update", func() error {
		r, err := c.GetOpenPositions(ctx, model)
		if err != nil {
			return err
		}
		if len(r.Positions) != 1 || r.Positions[0].Symbol != "BTC" || r.Positions[0].Quantity != 1 ||
			r.Positions[0].EntryPrice != 100 || r.Positions[0].Side != Long || r.Positions[0].Exchange != "hyperliquid" {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})

	// Partial close: 0.25 at 110, exit commission 0.5. gross (110−100)×0.25 = 2.5; entry share 2×0.25/1 = 0.5;
	// total commission 1; net 2.5 − 0.5 − 0.5 = 1.5; 0.75 stays open.
	t1 := nowMs() - 30000
	part, err := c.ClosePosition(ctx, &ClosePositionRequest{ModelID: model, Symbol: "BTC", ExitPrice: 110,
		ExitSize: Ptr(0.25), ExitTimeMs: t1, ExitCommission: Ptr(0.5)})
	if err != nil {
		t.Fatal(err)
	}
	if part.FullyClosed || part.ClosedSize != 0.25 || part.RemainingSize != 0.75 || part.RealizedGrossPnl != 2.5 ||
		part.RealizedNetPnl != 1.5 || part.TotalCommission != 1 || part.PositionID != open.PositionID ||
		!strings.HasPrefix(part.TradeRowID, model+"|BTC|") {
		t.Fatalf("partial close: %+v", part)
	}
	// Full close of the rest at 120, exit commission 0.25. gross 20×0.75 = 15; entry share 1.5 (all that is
	// left); total 1.75; net 15 − 1.5 − 0.25 = 13.25.
	full, err := c.ClosePosition(ctx, &ClosePositionRequest{ModelID: model, Symbol: "BTC", ExitPrice: 120,
		ExitTimeMs: t1 + 1000, ExitCommission: Ptr(0.25)})
	if err != nil {
		t.Fatal(err)
	}
	if !full.FullyClosed || full.ClosedSize != 0.75 || full.RemainingSize != 0 || full.RealizedGrossPnl != 15 ||
		full.RealizedNetPnl != 13.25 || full.TotalCommission != 1.75 {
		t.Fatalf("full close: %+v", full)
	}
	// A short: (90 − 100) × 2 negated = +20 gross, no commissions.
	if _, err := c.SavePosition(ctx, openReq(model, "ETH", Short, 2, 100, 0)); err != nil {
		t.Fatal(err)
	}
	short, err := c.ClosePosition(ctx, &ClosePositionRequest{ModelID: model, Symbol: "ETH", ExitPrice: 90,
		ExitTimeMs: t1 + 2000})
	if err != nil {
		t.Fatal(err)
	}
	if !short.FullyClosed || short.RealizedGrossPnl != 20 || short.RealizedNetPnl != 20 || short.TotalCommission != 0 {
		t.Fatalf("short close: %+v", short)
	}
	// Closing again: nothing open.
	_, err = c.ClosePosition(ctx, &ClosePositionRequest{ModelID: model, Symbol: "BTC", ExitPrice: 120, ExitTimeMs: t1 + 3000})
	mustCode(t, err, CodeNotFound, "")

	poll(t, "no open positions", func() error {
		r, err := c.GetOpenPositions(ctx, model)
		if err != nil || len(r.Positions) != 0 {
			return fmt.Errorf("%+v %v", r, err)
		}
		return nil
	})
	poll(t, "recent trades", func() error {
		r, err := c.GetRecentTrades(ctx, model, 10)
		if err != nil {
			return err
		}
		if len(r.Trades) != 3 {
			return fmt.Errorf("%d trades", len(r.Trades))
		}
		want := []struct {
			sym      string
			qty, pnl float64
			exit     float64
		}{{"ETH", 2, 20, 90}, {"BTC", 0.75, 13.25, 120}, {"BTC", 0.25, 1.5, 110}}
		for i, w := range want {
			g := r.Trades[i]
			if g.Symbol != w.sym || g.Quantity != w.qty || g.RealizedPnl != w.pnl || g.ExitPrice != w.exit ||
				g.ModelID != model || g.EntryPrice != 100 {
				return fmt.Errorf("trade %d: %+v, want %+v", i, g, w)
			}
		}
		return nil
	})
}

func TestIntegrationIdempotency(t *testing.T) {
	c := dialService(t, serviceSocket(t), nil)
	ctx := testCtx(t)
	model := uniq("go-idem")
	req := openReq(model, "SOL", Long, 3, 20, 0)
	req.IdempotencyKey = uniq("key")
	first, err := c.SavePosition(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.SavePosition(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed || !second.Replayed || second.PositionID != first.PositionID || !second.Opened ||
		second.UpdatedAtMs != first.UpdatedAtMs || second.IdempotencyKey != req.IdempotencyKey {
		t.Fatalf("first %+v second %+v", first, second)
	}
	// Same key, another payload → conflict; same key, another method → conflict.
	other := *req
	other.Quantity = Ptr(4.0)
	_, err = c.SavePosition(ctx, &other)
	e := mustCode(t, err, CodeConflict, "idempotency_key")
	if e.Retryable || e.Attempts != 1 {
		t.Fatalf("conflict: %+v", e)
	}
	_, err = c.ClosePosition(ctx, &ClosePositionRequest{IdempotencyKey: req.IdempotencyKey, ModelID: model,
		Symbol: "SOL", ExitPrice: 21, ExitTimeMs: nowMs()})
	mustCode(t, err, CodeConflict, "idempotency_key")
	// Generated keys: two calls with an empty key are two logical calls.
	a, err := c.PublishTradeEvent(ctx, &PublishTradeEventRequest{TradeID: uniq("t"), ModelID: model, Symbol: "SOL",
		Kind: "fill", TimestampMs: nowMs()})
	if err != nil {
		t.Fatal(err)
	}
	if a.IdempotencyKey == "" || a.Replayed || a.Duplicate {
		t.Fatalf("%+v", a)
	}
	// Position still 3 (the conflicting request did nothing).
	poll(t, "quantity unchanged", func() error {
		r, err := c.GetOpenPositions(ctx, model)
		if err != nil || len(r.Positions) != 1 || r.Positions[0].Quantity != 3 {
			return fmt.Errorf("%+v %v", r, err)
		}
		return nil
	})
}

func TestIntegrationInvalidArgument(t *testing.T) {
	c := dialService(t, serviceSocket(t), nil)
	ctx := testCtx(t)
	model := uniq("go-inv")
	_, err := c.SavePosition(ctx, openReq(model, "BTC", Long, -1, 100, 0))
	e := mustCode(t, err, CodeInvalidArgument, "quantity")
	if e.Retryable || e.Local || e.Attempts != 1 || e.Method != MethodSavePosition {
		t.Fatalf("%+v", e)
	}
	_, err = c.GetRecentTrades(ctx, model, 101)
	mustCode(t, err, CodeInvalidArgument, "limit")
	_, err = c.SaveSnapshot(ctx, &SaveSnapshotRequest{Snapshots: []AccountSnapshot{{ModelID: model,
		TimestampMs: nowMs(), DollarEquity: 1, Marks: []PositionMark{{Symbol: "BTC", CurrentPrice: -5}}}}})
	mustCode(t, err, CodeInvalidArgument, "snapshots.marks.current_price")
	_, err = c.Ping(ctx, make([]byte, 1025))
	mustCode(t, err, CodeInvalidArgument, "payload")
	// A payload the server cannot decode: protocol_error, the connection stays usable.
	_, err = c.CallRaw(ctx, MethodGetOpenPositions, []byte{0x0a, 0x05, 'a'}, &GetOpenPositionsResponse{})
	mustCode(t, err, CodeProtocolError, "")
	if _, err := c.Ping(ctx, []byte("still open")); err != nil {
		t.Fatal(err)
	}
	// An unknown method: unimplemented.
	_, err = c.CallRaw(ctx, 63, nil, &StatsResponse{})
	mustCode(t, err, CodeUnimplemented, "")
	_, err = c.GetTraderState(ctx, uniq("nobody"))
	mustCode(t, err, CodeNotFound, "")
}

func TestIntegrationDeadline(t *testing.T) {
	c := dialService(t, serviceSocket(t), &Options{MaxAttempts: 3})
	// An expired context: nothing is sent.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	_, err := c.Health(ctx)
	cancel()
	e := mustCode(t, err, CodeDeadlineExceeded, "")
	if !errors.Is(err, context.DeadlineExceeded) || !e.Local {
		t.Fatalf("%+v", e)
	}
	// A deadline too short for a batch of 20000 ticks: deadline_exceeded, from the server (deadline_ms) or from
	// the client's own timer, whichever comes first.
	ticks := make([]PriceTick, 20000)
	base := nowMs() - 100000
	for i := range ticks {
		ticks[i] = PriceTick{Provider: "go-tests", Symbol: fmt.Sprintf("D%d", i%50), Price: 1 + float64(i),
			TimestampMs: base + int64(i)}
	}
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Millisecond)
	start := time.Now()
	_, err = c.IngestPriceTicks(ctx, &IngestPriceTicksRequest{Ticks: ticks})
	cancel()
	e = mustCode(t, err, CodeDeadlineExceeded, "")
	if time.Since(start) > 2*time.Second {
		t.Fatalf("deadline honoured late: %v", time.Since(start))
	}
	t.Logf("deadline_exceeded: local=%v retryable=%v attempts=%d", e.Local, e.Retryable, e.Attempts)
	// The connection stays usable.
	ctx2 := testCtx(t)
	if p, err := c.Ping(ctx2, []byte{1, 2, 3}); err != nil || !bytes.Equal(p, []byte{1, 2, 3}) {
		t.Fatalf("ping after deadline: %x %v", p, err)
	}
}

func TestIntegrationPipelining(t *testing.T) {
	c := dialService(t, serviceSocket(t), nil)
	ctx := testCtx(t)
	model := uniq("go-pipe")
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			switch i % 4 {
			case 0, 1:
				want := []byte(fmt.Sprintf("ping-%d", i))
				got, err := c.Ping(ctx, want)
				if err == nil && !bytes.Equal(got, want) {
					err = fmt.Errorf("ping %d echoed %q", i, got)
				}
				errs <- err
			case 2:
				_, err := c.SavePosition(ctx, openReq(model, fmt.Sprintf("P%d", i), Long, float64(i), 10, 0))
				errs <- err
			case 3:
				_, err := c.GetOpenPositions(ctx, model)
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if err != nil {
			failures++
			if failures < 5 {
				t.Error(err)
			}
		}
	}
	if failures > 0 {
		t.Fatalf("%d of %d pipelined calls failed", failures, n)
	}
	poll(t, "250 open positions", func() error {
		r, err := c.GetOpenPositions(ctx, model)
		if err != nil {
			return err
		}
		if len(r.Positions) != n/4 {
			return fmt.Errorf("%d positions", len(r.Positions))
		}
		for _, p := range r.Positions {
			var i int
			fmt.Sscanf(p.Symbol, "P%d", &i)
			if p.Quantity != float64(i) {
				return fmt.Errorf("%s quantity %v", p.Symbol, p.Quantity)
			}
		}
		return nil
	})
}

func TestIntegrationEveryMethod(t *testing.T) {
	c := dialService(t, serviceSocket(t), nil)
	ctx := testCtx(t)
	model := uniq("go-all")
	now := nowMs()

	h, err := c.Health(ctx)
	if err != nil || h.Status != HealthOK || !h.Postgres.OK || !h.Redis.OK {
		t.Fatalf("health %+v %v", h, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || !strings.Contains(st.PrometheusText, "# ") {
		t.Fatalf("stats %v %.200q", err, st)
	}
	if p, err := c.Ping(ctx, nil); err != nil || len(p) != 0 {
		t.Fatalf("empty ping %x %v", p, err)
	}

	if _, err := c.SavePosition(ctx, openReq(model, "BTC", Long, 0.5, 60000, 0)); err != nil {
		t.Fatal(err)
	}
	ev := uniq("trade")
	pe, err := c.PublishTradeEvent(ctx, &PublishTradeEventRequest{TradeID: ev, ModelID: model, Symbol: "BTC",
		Kind: "fill", Side: Ptr(Long), Price: Ptr(60000.0), Size: Ptr(0.5), Fee: Ptr(-0.1), TimestampMs: now,
		PayloadJSON: Ptr(`{"oid": 1}`)})
	if err != nil || pe.Duplicate || pe.EventID != ev {
		t.Fatalf("trade event %+v %v", pe, err)
	}
	pe2, err := c.PublishTradeEvent(ctx, &PublishTradeEventRequest{TradeID: ev, ModelID: model, Symbol: "BTC",
		Kind: "fill", TimestampMs: now})
	if err != nil || !pe2.Duplicate || pe2.Replayed {
		t.Fatalf("duplicate trade event %+v %v", pe2, err)
	}

	snap, err := c.SaveSnapshot(ctx, &SaveSnapshotRequest{Snapshots: []AccountSnapshot{{ModelID: model,
		TimestampMs: now, DollarEquity: 10000, RealizedPnl: Ptr(0.0), TotalUnrealizedPnl: Ptr(12.5),
		Marks: []PositionMark{{Symbol: "BTC", CurrentPrice: 60025, UnrealizedPnl: Ptr(12.5)}}}}})
	if err != nil || len(snap.Results) != 1 || !snap.Results[0].Stored || snap.Results[0].MarksApplied != 1 ||
		snap.Results[0].ModelID != model || snap.Results[0].LastStoredMs != now {
		t.Fatalf("snapshot %+v %v", snap, err)
	}

	dc, err := c.RecordDecisionCycle(ctx, &RecordDecisionCycleRequest{ModelID: model, CycleNumber: Ptr(int64(7)),
		PromptDigest: Ptr("abc"), CotTrace: Ptr("thinking"), Success: true, ExecutedAtMs: Ptr(now),
		DecisionsJSON: Ptr(`[{"symbol": "btc", "action": "open_long", "confidence": 0.75}]`)})
	if err != nil || dc.ID <= 0 || dc.ExecutedAtMs != now {
		t.Fatalf("decision %+v %v", dc, err)
	}
	poll(t, "last decision", func() error {
		ld, err := c.GetLastDecision(ctx, model)
		if err != nil {
			return err
		}
		if ld.ModelID != model || !ld.Success || ld.TimestampMs != now || ld.Symbol == nil || *ld.Symbol != "BTC" ||
			ld.Action == nil || *ld.Action != "open_long" || ld.Confidence == nil {
			return fmt.Errorf("%+v", ld)
		}
		return nil
	})

	ua, err := c.UpdateAnalytics(ctx, &UpdateAnalyticsRequest{Entries: []ModelAnalytics{{ModelID: model,
		PayloadJSON: `{"total_pnl_pct": 1234.5}`, ServerTimeMs: now}}})
	if err != nil || ua.Updated != 1 {
		t.Fatalf("analytics %+v %v", ua, err)
	}
	poll(t, "leaderboard", func() error {
		lb, err := c.GetLeaderboard(ctx, 1000)
		if err != nil {
			return err
		}
		for _, e := range lb.Entries {
			if e.ModelID == model && e.Score == 1234.5 {
				return nil
			}
		}
		return fmt.Errorf("%s not on the leaderboard (%d entries)", model, len(lb.Entries))
	})

	trader := uniq("trader")
	ts, err := c.SaveTraderState(ctx, &SaveTraderStateRequest{State: TraderState{TraderID: trader,
		ExchangeProvider: Ptr("hyperliquid"), MarketProvider: Ptr("hyperliquid"), AllocationPct: Ptr(25.0),
		CooldownJSON: Ptr(`{"BTC": 1}`)}})
	if err != nil || ts.State.TraderID != trader || ts.Source != SourcePostgres || ts.State.AllocationPct == nil ||
		*ts.State.AllocationPct != 25 || ts.State.UpdatedAtMs == nil {
		t.Fatalf("trader state %+v %v", ts, err)
	}
	poll(t, "trader state", func() error {
		g, err := c.GetTraderState(ctx, trader)
		if err != nil {
			return err
		}
		if g.State.TraderID != trader || g.State.ExchangeProvider == nil || *g.State.ExchangeProvider != "hyperliquid" ||
			g.State.CooldownJSON == nil || !strings.Contains(*g.State.CooldownJSON, `"BTC"`) {
			return fmt.Errorf("%+v", g)
		}
		return nil
	})

	prov := uniq("prov")
	it, err := c.IngestPriceTicks(ctx, &IngestPriceTicksRequest{Ticks: []PriceTick{
		{Provider: prov, Symbol: "btc", Price: 60000, TimestampMs: now - 1000, Volume: Ptr(1.5)},
		{Provider: prov, Symbol: "BTC", Price: 60010, TimestampMs: now, RawJSON: Ptr(`{"p": 60010}`)}}})
	if err != nil || it.Stored != 2 || it.LatestUpdated != 1 {
		t.Fatalf("ticks %+v %v", it, err)
	}
	ma, err := c.UpsertMarketAssets(ctx, &UpsertMarketAssetsRequest{Assets: []MarketAsset{{Provider: prov,
		Symbol: "BTC", Name: Ptr("Bitcoin"), SzDecimals: Ptr(int64(5)), MaxLeverage: Ptr(50.0)}}})
	if err != nil || ma.Upserted != 1 {
		t.Fatalf("assets %+v %v", ma, err)
	}
	ac, err := c.UpsertAssetContexts(ctx, &UpsertAssetContextsRequest{Contexts: []AssetContext{{Provider: prov,
		Symbol: "BTC", Funding: Ptr(0.0001), MarkPx: Ptr(60005.0), ImpactPxsJSON: Ptr(`[60000, 60010]`)}}})
	if err != nil || ac.Upserted != 1 {
		t.Fatalf("contexts %+v %v", ac, err)
	}

	hy, err := c.Hydrate(ctx, &HydrateRequest{Models: []string{model}, Traders: []string{trader}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hydrate %+v", hy)
	cc, err := c.CheckConsistency(ctx, &CheckConsistencyRequest{Models: []string{model},
		ExchangeModels:    []string{model},
		ExchangePositions: []ExchangePosition{{ModelID: model, Symbol: "BTC", Side: Long, Quantity: 0.4}}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range cc.Differences {
		if d.Kind == "exchange_positions" && strings.Contains(d.Key, "BTC") {
			found = true
		}
	}
	if !found || cc.Checked == 0 {
		t.Fatalf("check consistency: %+v", cc)
	}
	op, err := c.GetOpenPositions(ctx, model)
	if err != nil || len(op.Positions) != 1 {
		t.Fatalf("open positions %+v %v", op, err)
	}
	rt, err := c.GetRecentTrades(ctx, model, 0)
	if err != nil || len(rt.Trades) != 0 {
		t.Fatalf("recent trades %+v %v", rt, err)
	}
}

// TestIntegrationRestartExactlyOnce kills the service (SIGKILL) and restarts it while a ClosePosition is in
// flight: a proxy between client and server forwards the request, and when the server's answer arrives it drops
// it, restarts the service and cuts the client's connection. The client retries on a new connection with the
// same bytes; the partial close must have happened exactly once.
func TestIntegrationRestartExactlyOnce(t *testing.T) {
	socket := serviceSocket(t)
	restart := os.Getenv("ENGINE_STORE_RESTART")
	if restart == "" {
		t.Skip("ENGINE_STORE_RESTART not set (clients/go/run-tests sets it)")
	}
	dir, err := os.MkdirTemp("", "es-go-proxy")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	proxyPath := filepath.Join(dir, "p.sock")
	ln, err := net.Listen("unix", proxyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var armed int32 = 1
	restarted := make(chan error, 1)
	go func() {
		for {
			cl, err := ln.Accept()
			if err != nil {
				return
			}
			go func(cl net.Conn) {
				defer cl.Close()
				up, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					buf := make([]byte, 65536)
					for {
						n, err := cl.Read(buf)
						if err != nil {
							up.Close()
							return
						}
						up.Write(buf[:n])
					}
				}()
				for {
					f, err := ReadFrame(up, 1<<30)
					if err != nil {
						return
					}
					if f.Method == MethodClosePosition && atomic.CompareAndSwapInt32(&armed, 1, 0) {
						out, err := exec.Command(restart).CombinedOutput()
						if err != nil {
							err = fmt.Errorf("%v: %s", err, out)
						}
						restarted <- err
						return // drops the answer and closes both connections
					}
					if _, err := cl.Write(EncodeFrame(f)); err != nil {
						return
					}
				}
			}(cl)
		}
	}()

	c := dialService(t, proxyPath, &Options{MaxAttempts: 100, MaxBackoff: 300 * time.Millisecond})
	ctx := testCtx(t)
	model := uniq("go-restart")
	if _, err := c.SavePosition(ctx, openReq(model, "BTC", Long, 1, 100, 0)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.ClosePosition(ctx, &ClosePositionRequest{ModelID: model, Symbol: "BTC", ExitPrice: 104,
		ExitSize: Ptr(0.25), ExitTimeMs: nowMs()})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-restarted:
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
	default:
		t.Fatal("the proxy never restarted the service")
	}
	if !resp.Replayed || resp.RemainingSize != 0.75 || resp.RealizedNetPnl != 1 {
		t.Fatalf("close after restart: %+v", resp)
	}
	direct := dialService(t, socket, nil)
	poll(t, "one partial close", func() error {
		r, err := direct.GetOpenPositions(ctx, model)
		if err != nil || len(r.Positions) != 1 || r.Positions[0].Quantity != 0.75 {
			return fmt.Errorf("positions %+v %v", r, err)
		}
		tr, err := direct.GetRecentTrades(ctx, model, 100)
		if err != nil || len(tr.Trades) != 1 {
			return fmt.Errorf("trades %+v %v", tr, err)
		}
		return nil
	})
}
