package enginestore

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const goldenDir = "../../proto-spec/golden"

func readHexFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// Message types of request (kind 1) and response (kind 2) payloads, by method.
var requestTypes = map[uint16]interface{}{
	MethodHello: HelloRequest{}, MethodHealth: HealthRequest{}, MethodStats: StatsRequest{},
	MethodHydrate: HydrateRequest{}, MethodCheckConsistency: CheckConsistencyRequest{}, MethodPing: PingMessage{},
	MethodSavePosition: SavePositionRequest{}, MethodClosePosition: ClosePositionRequest{},
	MethodPublishTradeEvent: PublishTradeEventRequest{}, MethodGetOpenPositions: GetOpenPositionsRequest{},
	MethodGetRecentTrades: GetRecentTradesRequest{}, MethodSaveSnapshot: SaveSnapshotRequest{},
	MethodRecordDecisionCycle: RecordDecisionCycleRequest{}, MethodUpdateAnalytics: UpdateAnalyticsRequest{},
	MethodSaveTraderState: SaveTraderStateRequest{}, MethodGetTraderState: GetTraderStateRequest{},
	MethodGetLastDecision: GetLastDecisionRequest{}, MethodGetLeaderboard: GetLeaderboardRequest{},
	MethodIngestPriceTicks: IngestPriceTicksRequest{}, MethodUpsertMarketAssets: UpsertMarketAssetsRequest{},
	MethodUpsertAssetContexts: UpsertAssetContextsRequest{}, MethodRecordConversation: RecordConversationRequest{},
}

var responseTypes = map[uint16]interface{}{
	MethodHello: HelloResponse{}, MethodHealth: HealthResponse{}, MethodStats: StatsResponse{},
	MethodHydrate: HydrateResponse{}, MethodCheckConsistency: CheckConsistencyResponse{}, MethodPing: PingMessage{},
	MethodSavePosition: SavePositionResponse{}, MethodClosePosition: ClosePositionResponse{},
	MethodPublishTradeEvent: PublishTradeEventResponse{}, MethodGetOpenPositions: GetOpenPositionsResponse{},
	MethodGetRecentTrades: GetRecentTradesResponse{}, MethodSaveSnapshot: SaveSnapshotResponse{},
	MethodRecordDecisionCycle: RecordDecisionCycleResponse{}, MethodUpdateAnalytics: UpdateAnalyticsResponse{},
	MethodSaveTraderState: TraderStateResponse{}, MethodGetTraderState: TraderStateResponse{},
	MethodGetLastDecision: LastDecision{}, MethodGetLeaderboard: GetLeaderboardResponse{},
	MethodIngestPriceTicks: IngestPriceTicksResponse{}, MethodUpsertMarketAssets: UpsertCountResponse{},
	MethodUpsertAssetContexts: UpsertCountResponse{}, MethodRecordConversation: RecordConversationResponse{},
}

var methodByName = map[string]uint16{
	"hello": 1, "health": 2, "stats": 3, "hydrate": 4, "check_consistency": 5, "ping": 6, "save_position": 16,
	"close_position": 17, "publish_trade_event": 18, "get_open_positions": 19, "get_recent_trades": 20,
	"save_snapshot": 32, "record_decision_cycle": 33, "update_analytics": 34, "save_trader_state": 35,
	"get_trader_state": 36, "get_last_decision": 37, "get_leaderboard": 38, "ingest_price_ticks": 48,
	"upsert_market_assets": 49, "upsert_asset_contexts": 50, "record_conversation": 39,
}

// The §13 table: kind, method, and where the table names them, request id and flags (-1 = not stated).
var goldenTable = map[string][4]int{
	"hello.request.hex": {1, 1, -1, -1}, "hello.response.hex": {2, 1, -1, -1},
	"health.request.hex": {1, 2, -1, -1}, "health.response.hex": {2, 2, -1, -1},
	"ping.request.hex": {1, 6, 3, -1}, "ping.response.hex": {2, 6, 3, -1},
	"save_position.request.hex": {1, 16, 7, -1}, "save_position.request.retry.hex": {1, 16, 8, 1},
	"save_position.response.hex": {2, 16, 7, -1}, "save_position.response.replayed.hex": {2, 16, 8, 2},
	"close_position.request.hex": {1, 17, -1, -1}, "close_position.response.hex": {2, 17, -1, -1},
	"publish_trade_event.request.hex": {1, 18, -1, -1}, "publish_trade_event.response.hex": {2, 18, -1, -1},
	"get_open_positions.request.hex": {1, 19, -1, -1}, "get_open_positions.response.hex": {2, 19, -1, -1},
	"get_recent_trades.request.hex": {1, 20, -1, -1}, "get_recent_trades.response.hex": {2, 20, -1, -1},
	"save_snapshot.request.hex": {1, 32, -1, -1}, "save_snapshot.response.hex": {2, 32, -1, -1},
	"record_decision_cycle.request.hex": {1, 33, -1, -1}, "record_decision_cycle.response.hex": {2, 33, -1, -1},
	"update_analytics.request.hex": {1, 34, -1, -1}, "update_analytics.response.hex": {2, 34, -1, -1},
	"save_trader_state.request.hex": {1, 35, -1, -1}, "save_trader_state.response.hex": {2, 35, -1, -1},
	"get_trader_state.request.hex":  {1, 36, -1, -1},
	"get_last_decision.request.hex": {1, 37, -1, -1}, "get_last_decision.response.hex": {2, 37, -1, -1},
	"get_leaderboard.request.hex": {1, 38, -1, -1}, "get_leaderboard.response.hex": {2, 38, -1, -1},
	"record_conversation.request.hex": {1, 39, -1, -1}, "record_conversation.response.hex": {2, 39, -1, -1},
	"error.invalid_argument.hex": {3, 16, -1, -1}, "error.not_found.hex": {3, 17, -1, -1},
	"error.conflict.hex": {3, 16, -1, -1}, "error.unavailable.hex": {3, 16, -1, -1},
	"error.protocol_error.hex": {3, 0, 0, -1}, "error.failed_precondition.hex": {3, 2, -1, -1},
	"notice.going_away.hex": {4, 0, 0, -1},
}

func TestGoldenFramesRoundTrip(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden frames in %s: %v", goldenDir, err)
	}
	seen := map[string]bool{}
	for _, path := range files {
		name := filepath.Base(path)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			data := readHexFile(t, path)
			f, n, err := DecodeFrame(data, DefaultMaxFrameBytes)
			if err != nil || n == 0 {
				t.Fatalf("decode frame: n=%d err=%v", n, err)
			}
			if n != len(data) {
				t.Fatalf("%d trailing bytes", len(data)-n)
			}
			if f.Version != 1 || f.DeadlineMs != 0 && f.Kind != KindRequest {
				t.Fatalf("header %+v", f.Header)
			}
			want, ok := goldenTable[name]
			if !ok {
				t.Fatalf("file not in the §13 table")
			}
			if int(f.Kind) != want[0] || int(f.Method) != want[1] ||
				(want[2] >= 0 && int(f.RequestID) != want[2]) || (want[3] >= 0 && int(f.Flags) != want[3]) {
				t.Fatalf("header %+v, want kind/method/id/flags %v", f.Header, want)
			}
			var proto interface{}
			parts := strings.Split(name, ".")
			switch {
			case parts[0] == "error":
				proto = ErrorPayload{}
				want := strings.TrimPrefix(strings.TrimSuffix(name, ".hex"), "error.")
				var p ErrorPayload
				if err := Unmarshal(f.Payload, &p); err != nil {
					t.Fatal(err)
				}
				if got := normalizeCode(p.Code).String(); got != want {
					t.Fatalf("code %s, file says %s", got, want)
				}
			case parts[0] == "notice":
				proto = Notice{}
			case parts[1] == "request":
				proto = requestTypes[methodByName[parts[0]]]
			default:
				proto = responseTypes[methodByName[parts[0]]]
			}
			if proto == nil {
				t.Fatalf("no message type for %s", name)
			}
			msg := reflect.New(reflect.TypeOf(proto)).Interface()
			if err := Unmarshal(f.Payload, msg); err != nil {
				t.Fatalf("payload: %v", err)
			}
			again := EncodeFrame(Frame{Header: f.Header, Payload: Marshal(msg)})
			if !bytes.Equal(again, data) {
				t.Fatalf("re-encoded frame differs\n got %x\nwant %x\nmsg %+v", again, data, msg)
			}
		})
	}
	for name := range goldenTable {
		if !seen[name] {
			t.Errorf("golden frame %s of the §13 table is missing", name)
		}
	}
}
