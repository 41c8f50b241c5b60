package enginestore

// Message types of §10 (and engine_store_v1.proto). Optional fields are pointers (nil = not set; use Ptr),
// repeated fields are slices, "default X" fields are plain values. The `es` tags drive the codec (codec.go).

// Method ids (§6).
const (
	MethodHello               uint16 = 1
	MethodHealth              uint16 = 2
	MethodStats               uint16 = 3
	MethodHydrate             uint16 = 4
	MethodCheckConsistency    uint16 = 5
	MethodPing                uint16 = 6
	MethodSavePosition        uint16 = 16
	MethodClosePosition       uint16 = 17
	MethodPublishTradeEvent   uint16 = 18
	MethodGetOpenPositions    uint16 = 19
	MethodGetRecentTrades     uint16 = 20
	MethodSaveSnapshot        uint16 = 32
	MethodRecordDecisionCycle uint16 = 33
	MethodUpdateAnalytics     uint16 = 34
	MethodSaveTraderState     uint16 = 35
	MethodGetTraderState      uint16 = 36
	MethodGetLastDecision     uint16 = 37
	MethodGetLeaderboard      uint16 = 38
	MethodRecordConversation  uint16 = 39
	MethodIngestPriceTicks    uint16 = 48
	MethodUpsertMarketAssets  uint16 = 49
	MethodUpsertAssetContexts uint16 = 50
)

// writeMethods carry an idempotency key (§6, §9).
var writeMethods = map[uint16]bool{
	MethodSavePosition: true, MethodClosePosition: true, MethodPublishTradeEvent: true, MethodSaveSnapshot: true,
	MethodRecordDecisionCycle: true, MethodUpdateAnalytics: true, MethodSaveTraderState: true, MethodRecordConversation: true,
	MethodIngestPriceTicks: true, MethodUpsertMarketAssets: true, MethodUpsertAssetContexts: true,
}

// IsWriteMethod reports whether method is a write (deduplicated by idempotency key).
func IsWriteMethod(method uint16) bool { return writeMethods[method] }

// Ptr returns a pointer to v, for optional fields.
func Ptr[T any](v T) *T { return &v }

// PositionSide (§10.3).
type PositionSide int32

const (
	Long  PositionSide = 1
	Short PositionSide = 2
)

func (s PositionSide) String() string {
	switch s {
	case Long:
		return "long"
	case Short:
		return "short"
	}
	return "PositionSide(?)"
}

// ReadSource (§10.6). An absent source reads as SourcePostgres.
type ReadSource int32

const (
	SourceCache    ReadSource = 1
	SourcePostgres ReadSource = 2
)

// HealthStatus (§10.2).
type HealthStatus int32

const (
	HealthOK        HealthStatus = 1
	HealthDegraded  HealthStatus = 2
	HealthUnhealthy HealthStatus = 3
)

// WriteMeta is embedded in the response of every write method.
type WriteMeta struct {
	// Replayed: the response header had the replayed flag: the outcome was recorded earlier under the same
	// idempotency key and the request was not executed again (§9).
	Replayed bool
	// IdempotencyKey is the key the call used (the caller's, or the generated one).
	IdempotencyKey string
}

func (m *WriteMeta) meta() *WriteMeta { return m }

type writeResponse interface{ meta() *WriteMeta }

// ---------------------------------------------------------------- session and operations

type HelloRequest struct {
	MinVersion uint32  `es:"1,min_version,uint32,req"`
	MaxVersion *uint32 `es:"2,max_version,uint32,opt"`
	ClientName *string `es:"3,client_name,string,opt"`
}

type HelloResponse struct {
	Version       uint32   `es:"1,version,uint32,req"`
	ServerName    string   `es:"2,server_name,string,def"`
	ServerVersion string   `es:"3,server_version,string,def"`
	MaxFrameBytes uint32   `es:"4,max_frame_bytes,uint32,req"`
	MaxInFlight   uint32   `es:"5,max_in_flight,uint32,def"`
	InstanceID    string   `es:"6,instance_id,string,def"`
	Methods       []uint64 `es:"7,methods,uint64,rep"`
}

type HealthRequest struct{}

type ComponentHealth struct {
	OK        bool    `es:"1,ok,bool,def"`
	LatencyUs uint64  `es:"2,latency_us,uint64,def"`
	Error     *string `es:"3,error,string,opt"`
}

type HealthResponse struct {
	Status          HealthStatus    `es:"1,status,enum3,req"`
	Postgres        ComponentHealth `es:"2,postgres,msg,req"`
	Redis           ComponentHealth `es:"3,redis,msg,req"`
	UptimeMs        uint64          `es:"4,uptime_ms,uint64,def"`
	OpenConnections uint32          `es:"5,open_connections,uint32,def"`
	InstanceID      string          `es:"6,instance_id,string,def"`
	ServerVersion   string          `es:"7,server_version,string,def"`
}

type StatsRequest struct{}

type StatsResponse struct {
	PrometheusText string `es:"1,prometheus_text,string,def"`
}

type HydrateRequest struct {
	Models  []string `es:"1,models,string,rep"`
	Traders []string `es:"2,traders,string,rep"`
}

type HydrateResponse struct {
	Ran         bool   `es:"1,ran,bool,def"`
	Models      uint32 `es:"2,models,uint32,def"`
	KeysWritten uint32 `es:"3,keys_written,uint32,def"`
	TookMs      uint64 `es:"4,took_ms,uint64,def"`
}

type ExchangePosition struct {
	ModelID  string       `es:"1,model_id,string,req"`
	Symbol   string       `es:"2,symbol,string,req"`
	Side     PositionSide `es:"3,side,enum2,req"`
	Quantity float64      `es:"4,quantity,double,req"` // required, 0 is valid: always sent
}

type CheckConsistencyRequest struct {
	Models            []string           `es:"1,models,string,rep"`
	Repair            bool               `es:"2,repair,bool,def"`
	ExchangeModels    []string           `es:"3,exchange_models,string,rep"`
	ExchangePositions []ExchangePosition `es:"4,exchange_positions,msg,rep"`
}

type Inconsistency struct {
	Kind          string `es:"1,kind,string,def"`
	Key           string `es:"2,key,string,def"`
	DatabaseValue string `es:"3,database_value,string,def"`
	OtherValue    string `es:"4,other_value,string,def"`
	Repaired      bool   `es:"5,repaired,bool,def"`
}

type CheckConsistencyResponse struct {
	Differences []Inconsistency `es:"1,differences,msg,rep"`
	Checked     uint32          `es:"2,checked,uint32,def"`
}

// PingMessage is the request and the response of Ping (method 6).
type PingMessage struct {
	Payload []byte `es:"1,payload,bytes,omit"`
}

// ---------------------------------------------------------------- positions and trades

type SavePositionRequest struct {
	IdempotencyKey   string        `es:"1,idempotency_key,string,req"`
	ModelID          string        `es:"2,model_id,string,req"`
	Symbol           string        `es:"3,symbol,string,req"`
	ExchangeProvider *string       `es:"4,exchange_provider,string,opt"`
	Side             *PositionSide `es:"5,side,enum2,opt"`
	Quantity         *float64      `es:"6,quantity,double,opt"`
	EntryPrice       *float64      `es:"7,entry_price,double,opt"`
	EntryTimeMs      *int64        `es:"8,entry_time_ms,sint64,opt"`
	Leverage         *float64      `es:"9,leverage,double,opt"`
	Confidence       *float64      `es:"10,confidence,double,opt"`
	RiskUSD          *float64      `es:"11,risk_usd,double,opt"`
	Margin           *float64      `es:"12,margin,double,opt"`
	EntryOid         *int64        `es:"13,entry_oid,sint64,opt"`
	TpOid            *int64        `es:"14,tp_oid,sint64,opt"`
	SlOid            *int64        `es:"15,sl_oid,sint64,opt"`
	WaitForFill      *bool         `es:"16,wait_for_fill,bool,opt"`
	ExitPlanJSON     *string       `es:"17,exit_plan_json,string,opt"`
	IndexJSON        *string       `es:"18,index_json,string,opt"`
	CurrentPrice     *float64      `es:"19,current_price,double,opt"`
	UnrealizedPnl    *float64      `es:"20,unrealized_pnl,double,opt"`
	LiquidationPrice *float64      `es:"21,liquidation_price,double,opt"`
	Commission       *float64      `es:"22,commission,double,opt"`
	Slippage         *float64      `es:"23,slippage,double,opt"`
}

type SavePositionResponse struct {
	PositionID  string `es:"1,position_id,string,req"`
	Opened      bool   `es:"2,opened,bool,def"`
	UpdatedAtMs int64  `es:"3,updated_at_ms,sint64,def"`
	WriteMeta
}

type ClosePositionRequest struct {
	IdempotencyKey      string   `es:"1,idempotency_key,string,req"`
	ModelID             string   `es:"2,model_id,string,req"`
	Symbol              string   `es:"3,symbol,string,req"`
	ExitPrice           float64  `es:"4,exit_price,double,req"`
	ExitSize            *float64 `es:"5,exit_size,double,opt"` // nil = the whole open size
	ExitTimeMs          int64    `es:"6,exit_time_ms,sint64,req"`
	ExitOid             *int64   `es:"7,exit_oid,sint64,opt"`
	ExitTid             *int64   `es:"8,exit_tid,sint64,opt"`
	ExitCommission      *float64 `es:"9,exit_commission,double,opt"`
	ExitCrossed         *bool    `es:"10,exit_crossed,bool,opt"`
	ExitLiquidationJSON *string  `es:"11,exit_liquidation_json,string,opt"`
	TradeID             *string  `es:"12,trade_id,string,opt"`
	TradeType           *string  `es:"13,trade_type,string,opt"`
}

type ClosePositionResponse struct {
	TradeRowID       string  `es:"1,trade_row_id,string,req"`
	PositionID       string  `es:"2,position_id,string,def"`
	FullyClosed      bool    `es:"3,fully_closed,bool,def"`
	ClosedSize       float64 `es:"4,closed_size,double,def"`
	RemainingSize    float64 `es:"5,remaining_size,double,def"`
	RealizedGrossPnl float64 `es:"6,realized_gross_pnl,double,def"`
	RealizedNetPnl   float64 `es:"7,realized_net_pnl,double,def"`
	TotalCommission  float64 `es:"8,total_commission,double,def"`
	WriteMeta
}

type PublishTradeEventRequest struct {
	IdempotencyKey string        `es:"1,idempotency_key,string,req"`
	TradeID        string        `es:"2,trade_id,string,req"`
	ModelID        string        `es:"3,model_id,string,req"`
	Symbol         string        `es:"4,symbol,string,req"`
	Kind           string        `es:"5,kind,string,req"`
	Side           *PositionSide `es:"6,side,enum2,opt"`
	Price          *float64      `es:"7,price,double,opt"`
	Size           *float64      `es:"8,size,double,opt"`
	Fee            *float64      `es:"9,fee,double,opt"`
	TimestampMs    int64         `es:"10,timestamp_ms,sint64,req"`
	PayloadJSON    *string       `es:"11,payload_json,string,opt"`
}

type PublishTradeEventResponse struct {
	Duplicate bool   `es:"1,duplicate,bool,def"`
	EventID   string `es:"2,event_id,string,def"`
	WriteMeta
}

type GetOpenPositionsRequest struct {
	ModelID string `es:"1,model_id,string,req"`
}

type PositionSnapshot struct {
	Symbol      string       `es:"1,symbol,string,req"`
	Side        PositionSide `es:"2,side,enum2,req"`
	Quantity    float64      `es:"3,quantity,double,def"`
	EntryPrice  float64      `es:"4,entry_price,double,def"`
	Leverage    *float64     `es:"5,leverage,double,opt"`
	Confidence  *float64     `es:"6,confidence,double,opt"`
	RiskUSD     *float64     `es:"7,risk_usd,double,opt"`
	UpdatedAtMs int64        `es:"8,updated_at_ms,sint64,def"`
	Exchange    string       `es:"9,exchange,string,def"`
}

type GetOpenPositionsResponse struct {
	Positions []PositionSnapshot `es:"1,positions,msg,rep"`
	Source    ReadSource         `es:"2,source,enum2,def=2"`
}

// GetRecentTradesRequest: Limit 0 is sent as the default 20 by the client.
type GetRecentTradesRequest struct {
	ModelID string `es:"1,model_id,string,req"`
	Limit   uint32 `es:"2,limit,uint32,def=20"`
}

type TradeSnapshot struct {
	ModelID      string       `es:"1,model_id,string,def"`
	Symbol       string       `es:"2,symbol,string,req"`
	Side         PositionSide `es:"3,side,enum2,req"`
	Quantity     float64      `es:"4,quantity,double,def"`
	EntryPrice   float64      `es:"5,entry_price,double,def"`
	ExitPrice    float64      `es:"6,exit_price,double,def"`
	RealizedPnl  float64      `es:"7,realized_pnl,double,def"`
	Confidence   *float64     `es:"8,confidence,double,opt"`
	ClosedAtMs   int64        `es:"9,closed_at_ms,sint64,def"`
	Exchange     string       `es:"10,exchange,string,def"`
	EntryTimeMs  int64        `es:"11,entry_time_ms,sint64,def"`
	Leverage     *float64     `es:"12,leverage,double,opt"`
	PositionSize float64      `es:"13,position_size,double,def"`
}

type GetRecentTradesResponse struct {
	Trades []TradeSnapshot `es:"1,trades,msg,rep"`
	Source ReadSource      `es:"2,source,enum2,def=2"`
}

// ---------------------------------------------------------------- account and analytics

type PositionMark struct {
	Symbol           string   `es:"1,symbol,string,req"`
	CurrentPrice     float64  `es:"2,current_price,double,req"`
	UnrealizedPnl    *float64 `es:"3,unrealized_pnl,double,opt"`
	LiquidationPrice *float64 `es:"4,liquidation_price,double,opt"`
}

type AccountSnapshot struct {
	ModelID                    string         `es:"1,model_id,string,req"`
	TimestampMs                int64          `es:"2,timestamp_ms,sint64,req"`
	DollarEquity               float64        `es:"3,dollar_equity,double,req"` // required, 0 is valid: always sent
	RealizedPnl                *float64       `es:"4,realized_pnl,double,opt"`
	TotalUnrealizedPnl         *float64       `es:"5,total_unrealized_pnl,double,opt"`
	CumPnlPct                  *float64       `es:"6,cum_pnl_pct,double,opt"`
	SharpeRatio                *float64       `es:"7,sharpe_ratio,double,opt"`
	SinceInceptionHourlyMarker *int64         `es:"8,since_inception_hourly_marker,sint64,opt"`
	SinceInceptionMinuteMarker *int64         `es:"9,since_inception_minute_marker,sint64,opt"`
	MetadataJSON               *string        `es:"10,metadata_json,string,opt"`
	Marks                      []PositionMark `es:"11,marks,msg,rep"`
}

type SaveSnapshotRequest struct {
	IdempotencyKey string            `es:"1,idempotency_key,string,req"`
	Snapshots      []AccountSnapshot `es:"2,snapshots,msg,rep"`
}

type SnapshotResult struct {
	ModelID      string `es:"1,model_id,string,def"`
	Stored       bool   `es:"2,stored,bool,def"`
	LastStoredMs int64  `es:"3,last_stored_ms,sint64,def"`
	MarksApplied uint32 `es:"4,marks_applied,uint32,def"`
}

type SaveSnapshotResponse struct {
	Results []SnapshotResult `es:"1,results,msg,rep"`
	WriteMeta
}

type RecordDecisionCycleRequest struct {
	IdempotencyKey string  `es:"1,idempotency_key,string,req"`
	ModelID        string  `es:"2,model_id,string,req"`
	CycleNumber    *int64  `es:"3,cycle_number,sint64,opt"`
	PromptDigest   *string `es:"4,prompt_digest,string,opt"`
	CotTrace       *string `es:"5,cot_trace,string,opt"`
	DecisionsJSON  *string `es:"6,decisions_json,string,opt"`
	Success        bool    `es:"7,success,bool,def"`
	ErrorMessage   *string `es:"8,error_message,string,opt"`
	ExecutedAtMs   *int64  `es:"9,executed_at_ms,sint64,opt"`
}

type RecordDecisionCycleResponse struct {
	ID           int64 `es:"1,id,sint64,def"`
	ExecutedAtMs int64 `es:"2,executed_at_ms,sint64,def"`
	WriteMeta
}

type GetLastDecisionRequest struct {
	ModelID string `es:"1,model_id,string,req"`
}

type LastDecision struct {
	ModelID     string     `es:"1,model_id,string,def"`
	Success     bool       `es:"2,success,bool,def"`
	TimestampMs int64      `es:"3,timestamp_ms,sint64,def"`
	Symbol      *string    `es:"4,symbol,string,opt"`
	Action      *string    `es:"5,action,string,opt"`
	Confidence  *float64   `es:"6,confidence,double,opt"`
	Error       *string    `es:"7,error,string,opt"`
	Source      ReadSource `es:"8,source,enum2,def=2"`
}

type ModelAnalytics struct {
	ModelID      string  `es:"1,model_id,string,req"`
	PayloadJSON  string  `es:"2,payload_json,string,req"`
	ServerTimeMs int64   `es:"3,server_time_ms,sint64,req"`
	MetadataJSON *string `es:"4,metadata_json,string,opt"`
}

type UpdateAnalyticsRequest struct {
	IdempotencyKey string           `es:"1,idempotency_key,string,req"`
	Entries        []ModelAnalytics `es:"2,entries,msg,rep"`
}

type UpdateAnalyticsResponse struct {
	Updated uint32 `es:"1,updated,uint32,def"`
	WriteMeta
}

// GetLeaderboardRequest: Limit 0 is sent as the default 100 by the client.
type GetLeaderboardRequest struct {
	Limit uint32 `es:"1,limit,uint32,def=100"`
}

type LeaderboardEntry struct {
	ModelID string  `es:"1,model_id,string,def"`
	Score   float64 `es:"2,score,double,def"`
}

type GetLeaderboardResponse struct {
	Entries []LeaderboardEntry `es:"1,entries,msg,rep"`
	Source  ReadSource         `es:"2,source,enum2,def=2"`
}

// ---------------------------------------------------------------- conversations

// RecordConversationRequest (method 39, engine_store_v1.proto): one executor → LLM interaction, as nof0's
// executor.ConversationRecorder reports it.
type RecordConversationRequest struct {
	IdempotencyKey   string  `es:"1,idempotency_key,string,req"`
	ModelID          string  `es:"2,model_id,string,req"`
	Prompt           string  `es:"3,prompt,string,req"`
	Response         *string `es:"4,response,string,opt"` // nil = no assistant message
	PromptTokens     *uint32 `es:"5,prompt_tokens,uint32,opt"`
	CompletionTokens *uint32 `es:"6,completion_tokens,uint32,opt"`
	TotalTokens      *uint32 `es:"7,total_tokens,uint32,opt"` // nil = prompt_tokens + completion_tokens
	ModelName        *string `es:"8,model_name,string,opt"`
	TimestampMs      *int64  `es:"9,timestamp_ms,sint64,opt"` // nil = the server's transaction time
	Topic            *string `es:"10,topic,string,opt"`
}

type RecordConversationResponse struct {
	ConversationID int64 `es:"1,conversation_id,sint64,req"`
	TimestampMs    int64 `es:"2,timestamp_ms,sint64,def"`
	WriteMeta
}

// ---------------------------------------------------------------- trader state

type TraderState struct {
	TraderID         string   `es:"1,trader_id,string,req"`
	ExchangeProvider *string  `es:"2,exchange_provider,string,opt"`
	MarketProvider   *string  `es:"3,market_provider,string,opt"`
	AllocationPct    *float64 `es:"4,allocation_pct,double,opt"`
	CooldownJSON     *string  `es:"5,cooldown_json,string,opt"`
	RiskGuardsJSON   *string  `es:"6,risk_guards_json,string,opt"`
	LastDecisionAtMs *int64   `es:"7,last_decision_at_ms,sint64,opt"`
	PauseUntilMs     *int64   `es:"8,pause_until_ms,sint64,opt"`
	UpdatedAtMs      *int64   `es:"9,updated_at_ms,sint64,opt"`
}

type SaveTraderStateRequest struct {
	IdempotencyKey string      `es:"1,idempotency_key,string,req"`
	State          TraderState `es:"2,state,msg,req"`
}

type GetTraderStateRequest struct {
	TraderID string `es:"1,trader_id,string,req"`
}

type TraderStateResponse struct {
	State     TraderState `es:"1,state,msg,req"`
	Source    ReadSource  `es:"2,source,enum2,def=2"`
	WriteMeta             // set by SaveTraderState only
}

// ---------------------------------------------------------------- market data

type PriceTick struct {
	Provider    string   `es:"1,provider,string,req"`
	Symbol      string   `es:"2,symbol,string,req"`
	Price       float64  `es:"3,price,double,req"`
	TimestampMs int64    `es:"4,timestamp_ms,sint64,req"`
	Volume      *float64 `es:"5,volume,double,opt"`
	RawJSON     *string  `es:"6,raw_json,string,opt"`
}

type IngestPriceTicksRequest struct {
	IdempotencyKey string      `es:"1,idempotency_key,string,req"`
	Ticks          []PriceTick `es:"2,ticks,msg,rep"`
}

type IngestPriceTicksResponse struct {
	Stored        uint32 `es:"1,stored,uint32,def"`
	LatestUpdated uint32 `es:"2,latest_updated,uint32,def"`
	WriteMeta
}

type MarketAsset struct {
	Provider      string   `es:"1,provider,string,req"`
	Symbol        string   `es:"2,symbol,string,req"`
	Name          *string  `es:"3,name,string,opt"`
	SzDecimals    *int64   `es:"4,sz_decimals,sint64,opt"`
	MaxLeverage   *float64 `es:"5,max_leverage,double,opt"`
	OnlyIsolated  *bool    `es:"6,only_isolated,bool,opt"`
	MarginTableID *int64   `es:"7,margin_table_id,sint64,opt"`
	IsDelisted    *bool    `es:"8,is_delisted,bool,opt"`
}

type UpsertMarketAssetsRequest struct {
	IdempotencyKey string        `es:"1,idempotency_key,string,req"`
	Assets         []MarketAsset `es:"2,assets,msg,rep"`
}

type AssetContext struct {
	Provider      string   `es:"1,provider,string,req"`
	Symbol        string   `es:"2,symbol,string,req"`
	Funding       *float64 `es:"3,funding,double,opt"`
	OpenInterest  *float64 `es:"4,open_interest,double,opt"`
	OraclePx      *float64 `es:"5,oracle_px,double,opt"`
	MarkPx        *float64 `es:"6,mark_px,double,opt"`
	MidPx         *float64 `es:"7,mid_px,double,opt"`
	ImpactPxsJSON *string  `es:"8,impact_pxs_json,string,opt"`
	PrevDayPx     *float64 `es:"9,prev_day_px,double,opt"`
	DayNtlVlm     *float64 `es:"10,day_ntl_vlm,double,opt"`
	DayBaseVlm    *float64 `es:"11,day_base_vlm,double,opt"`
}

type UpsertAssetContextsRequest struct {
	IdempotencyKey string         `es:"1,idempotency_key,string,req"`
	Contexts       []AssetContext `es:"2,contexts,msg,rep"`
}

type UpsertCountResponse struct {
	Upserted uint32 `es:"1,upserted,uint32,def"`
	WriteMeta
}

// ---------------------------------------------------------------- errors and notices

type ErrorPayload struct {
	Code      uint32  `es:"1,code,uint32,req"`
	Message   string  `es:"2,message,string,def"`
	Retryable bool    `es:"3,retryable,bool,def"`
	Field     *string `es:"4,field,string,opt"`
}

// NoticeGoingAway: graceful shutdown has begun (§8).
const NoticeGoingAway uint32 = 1

type Notice struct {
	Code    uint32 `es:"1,code,uint32,req"`
	Message string `es:"2,message,string,def"`
}
