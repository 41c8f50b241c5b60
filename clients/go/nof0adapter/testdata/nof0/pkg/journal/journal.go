// Type definitions copied from nof0 (github.com/tgeconf/nof0 at 934d614, module nof0-api):
// go/pkg/journal/journal.go; only what
// TestReadmeShimCompiles needs to compile the README's shim against nof0's real field lists.
package journal

import "time"

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
