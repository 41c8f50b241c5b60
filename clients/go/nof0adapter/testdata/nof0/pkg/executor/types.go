// Type definitions copied from nof0 (github.com/tgeconf/nof0 at 934d614, module nof0-api):
// go/pkg/executor/types.go and persistence.go; only what
// TestReadmeShimCompiles needs to compile the README's shim against nof0's real field lists.
package executor

import (
	"context"
	"time"
)

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
type ConversationRecorder interface {
	RecordConversation(ctx context.Context, rec ConversationRecord) error
}
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
