// Type definitions copied from nof0 (github.com/tgeconf/nof0 at 934d614, module nof0-api):
// go/pkg/manager/persistence.go (VirtualTrader cut down from trader.go); only what
// TestReadmeShimCompiles needs to compile the README's shim against nof0's real field lists.
package manager

import (
	"context"
	"nof0-api/pkg/exchange"
	executorpkg "nof0-api/pkg/executor"
	"nof0-api/pkg/journal"
	"sync"
	"time"
)

type VirtualTrader struct {
	mu sync.RWMutex

	ID       string
	Name     string
	Exchange string
	Cooldown map[string]time.Time
}
type PositionEventType string

const (
	// PositionEventOpen marks an entry event (new or increased exposure).
	PositionEventOpen PositionEventType = "open"
	// PositionEventClose marks an exit event (full close or reduce-only).
	PositionEventClose PositionEventType = "close"
)

// PositionEvent captures the minimal data needed for persistence/caching layers.
type PositionEvent struct {
	TraderID string
	Trader   *VirtualTrader
	Decision executorpkg.Decision
	Event    PositionEventType

	ExchangeResponse *exchange.OrderResponse
	OccurredAt       time.Time
	FillPrice        float64
	FillSize         float64
}

// DecisionCycleRecord is emitted after each decision loop for DB/cache mirroring.
type DecisionCycleRecord struct {
	TraderID string
	Cycle    *journal.CycleRecord
}

// AccountSyncSnapshot represents a normalized account/equity update.
type AccountSyncSnapshot struct {
	TraderID            string
	EquityUSD           float64
	MarginUsedUSD       float64
	AvailableBalanceUSD float64
	UnrealizedPnLUSD    float64
	SyncedAt            time.Time
}

// AnalyticsSnapshot captures performance metrics for persistence/leaderboard.
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

// PersistenceService describes the hooks manager emits to capture state changes.
type PersistenceService interface {
	RecordPositionEvent(ctx context.Context, event PositionEvent) error
	RecordDecisionCycle(ctx context.Context, record DecisionCycleRecord) error
	RecordAccountSnapshot(ctx context.Context, snapshot AccountSyncSnapshot) error
	RecordAnalytics(ctx context.Context, snapshot AnalyticsSnapshot) error
	HydrateCaches(ctx context.Context, traderIDs []string) error
}
