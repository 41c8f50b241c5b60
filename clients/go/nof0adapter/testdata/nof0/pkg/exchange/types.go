// Type definitions copied from nof0 (github.com/tgeconf/nof0 at 934d614, module nof0-api):
// go/pkg/exchange/types.go; only what
// TestReadmeShimCompiles needs to compile the README's shim against nof0's real field lists.
package exchange

type OrderResponse struct {
	Status       string            `json:"status"` // "ok" or "err".
	Response     OrderResponseData `json:"response"`
	ErrorMessage string            `json:"-"` // Populated when response is a string (typically error message)
}
type OrderResponseData struct {
	Type string                  `json:"type"` // Typically "order".
	Data OrderResponseDataDetail `json:"data"`
}
type OrderResponseDataDetail struct {
	Statuses []OrderStatusResponse `json:"statuses"`
}
type OrderStatusResponse struct {
	Resting *RestingOrder `json:"resting,omitempty"`
	Filled  *FilledOrder  `json:"filled,omitempty"`
	Error   string        `json:"error,omitempty"`
}
type RestingOrder struct {
	Oid int64 `json:"oid"`
}
type FilledOrder struct {
	TotalSz string `json:"totalSz"`
	AvgPx   string `json:"avgPx"`
	Oid     int64  `json:"oid"`
}
