package nof0adapter

import (
	"context"
	"time"
)

// Mirrors of the nof0 types the adapter consumes (module nof0-api: go/pkg/manager/persistence.go,
// go/pkg/executor/persistence.go and types.go, go/pkg/journal/journal.go, go/pkg/exchange/types.go). nof0's module
// cannot be imported here, so the field names, Go types and field order are copied: the flat ones convert with a
// plain Go conversion in nof0 (nof0adapter.AnalyticsSnapshot(s), nof0adapter.Decision(d),
// (*nof0adapter.CycleRecord)(r.Cycle)); README "Using EngineStore from nof0" has the whole shim.

// PersistenceService mirrors manager.PersistenceService, the hooks nof0's manager calls.
type PersistenceService interface {
	RecordPositionEvent(ctx context.Context, event PositionEvent) error
	RecordDecisionCycle(ctx context.Context, record DecisionCycleRecord) error
	RecordAccountSnapshot(ctx context.Context, snapshot AccountSyncSnapshot) error
	RecordAnalytics(ctx context.Context, snapshot AnalyticsSnapshot) error
	HydrateCaches(ctx context.Context, traderIDs []string) error
}

// ConversationRecorder mirrors executor.ConversationRecorder.
type ConversationRecorder interface {
	RecordConversation(ctx context.Context, rec ConversationRecord) error
}

// PositionEventType mirrors manager.PositionEventType.
type PositionEventType string

const (
	// PositionEventOpen marks an entry event (new or increased exposure).
	PositionEventOpen PositionEventType = "open"
	// PositionEventClose marks an exit event (full close or reduce-only).
	PositionEventClose PositionEventType = "close"
)

// PositionEvent mirrors manager.PositionEvent.
type PositionEvent struct {
	TraderID string
	Trader   *VirtualTrader
	Decision Decision
	Event    PositionEventType

	ExchangeResponse *OrderResponse
	OccurredAt       time.Time
	FillPrice        float64
	FillSize         float64
}

// VirtualTrader holds the fields of manager.VirtualTrader the adapter reads (the real one carries providers and a
// mutex).
type VirtualTrader struct {
	ID       string
	Name     string
	Exchange string
}

// Decision mirrors executor.Decision, every field in order.
type Decision struct {
	Symbol                string
	Action                string
	Leverage              int
	PositionSizeUSD       float64
	EntryPrice            float64
	StopLoss              float64
	TakeProfit            float64
	Confidence            int
	RiskUSD               float64
	Reasoning             string
	InvalidationCondition string
}

// OrderResponse mirrors exchange.OrderResponse (the fill statuses the adapter reads).
type OrderResponse struct {
	Status       string
	Response     OrderResponseData
	ErrorMessage string
}

// OrderResponseData mirrors exchange.OrderResponseData.
type OrderResponseData struct {
	Type string
	Data OrderResponseDataDetail
}

// OrderResponseDataDetail mirrors exchange.OrderResponseDataDetail.
type OrderResponseDataDetail struct {
	Statuses []OrderStatusResponse
}

// OrderStatusResponse mirrors exchange.OrderStatusResponse.
type OrderStatusResponse struct {
	Resting *RestingOrder
	Filled  *FilledOrder
	Error   string
}

// RestingOrder mirrors exchange.RestingOrder.
type RestingOrder struct {
	Oid int64
}

// FilledOrder mirrors exchange.FilledOrder.
type FilledOrder struct {
	TotalSz string
	AvgPx   string
	Oid     int64
}

// DecisionCycleRecord mirrors manager.DecisionCycleRecord.
type DecisionCycleRecord struct {
	TraderID string
	Cycle    *CycleRecord
}

// CycleRecord mirrors journal.CycleRecord, every field in order.
type CycleRecord struct {
	Timestamp     time.Time              `json:"timestamp"`
	TraderID      string                 `json:"trader_id"`
	CycleNumber   int                    `json:"cycle_number"`
	PromptDigest  string                 `json:"prompt_digest,omitempty"`
	CoTTrace      string                 `json:"cot_trace,omitempty"`
	DecisionsJSON string                 `json:"decisions_json,omitempty"`
	Account       map[string]any         `json:"account_snapshot,omitempty"`
	Positions     []map[string]any       `json:"positions_snapshot,omitempty"`
	Candidates    []string               `json:"candidates,omitempty"`
	MarketDigest  map[string]any         `json:"market_snap_digest,omitempty"`
	Actions       []map[string]any       `json:"actions,omitempty"`
	Success       bool                   `json:"success"`
	ErrorMessage  string                 `json:"error_message,omitempty"`
	Extra         map[string]interface{} `json:"extra,omitempty"`
}

// AccountSyncSnapshot mirrors manager.AccountSyncSnapshot.
type AccountSyncSnapshot struct {
	TraderID            string
	EquityUSD           float64
	MarginUsedUSD       float64
	AvailableBalanceUSD float64
	UnrealizedPnLUSD    float64
	SyncedAt            time.Time
}

// AnalyticsSnapshot mirrors manager.AnalyticsSnapshot.
type AnalyticsSnapshot struct {
	TraderID       string
	TotalPnLUSD    float64
	TotalPnLPct    float64
	SharpeRatio    float64
	WinRate        float64
	TotalTrades    int
	MaxDrawdownPct float64
	UpdatedAt      time.Time
}

// ConversationRecord mirrors executor.ConversationRecord.
type ConversationRecord struct {
	ModelID          string
	Prompt           string
	PromptTokens     int
	Response         string
	CompletionTokens int
	TotalTokens      int
	ModelName        string
	Timestamp        time.Time
	Topic            string
}
