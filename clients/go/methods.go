package enginestore

import "context"

// One typed method per RPC of §6. Write methods generate an idempotency key when the request has none (the
// caller's request is not modified) and report it, and the replayed flag, in the response's WriteMeta.

func (c *Client) write(ctx context.Context, method uint16, req interface{}, key *string, resp writeResponse) error {
	if *key == "" {
		*key = NewIdempotencyKey()
	}
	h, err := c.Call(ctx, method, req, resp)
	if err != nil {
		return err
	}
	m := resp.meta()
	m.Replayed = h.Flags&FlagReplayed != 0
	m.IdempotencyKey = *key
	return nil
}

func (c *Client) read(ctx context.Context, method uint16, req, resp interface{}) error {
	_, err := c.Call(ctx, method, req, resp)
	return err
}

// Health (method 2).
func (c *Client) Health(ctx context.Context) (*HealthResponse, error) {
	resp := new(HealthResponse)
	if err := c.read(ctx, MethodHealth, &HealthRequest{}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// Stats (method 3).
func (c *Client) Stats(ctx context.Context) (*StatsResponse, error) {
	resp := new(StatsResponse)
	if err := c.read(ctx, MethodStats, &StatsRequest{}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// Hydrate (method 4).
func (c *Client) Hydrate(ctx context.Context, req *HydrateRequest) (*HydrateResponse, error) {
	resp := new(HydrateResponse)
	if err := c.read(ctx, MethodHydrate, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// CheckConsistency (method 5).
func (c *Client) CheckConsistency(ctx context.Context, req *CheckConsistencyRequest) (*CheckConsistencyResponse, error) {
	resp := new(CheckConsistencyResponse)
	if err := c.read(ctx, MethodCheckConsistency, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// Ping (method 6) echoes payload (at most 1024 bytes).
func (c *Client) Ping(ctx context.Context, payload []byte) ([]byte, error) {
	resp := new(PingMessage)
	if err := c.read(ctx, MethodPing, &PingMessage{Payload: payload}, resp); err != nil {
		return nil, err
	}
	return resp.Payload, nil
}

// SavePosition (method 16) opens or updates a position.
func (c *Client) SavePosition(ctx context.Context, req *SavePositionRequest) (*SavePositionResponse, error) {
	r, resp := *req, new(SavePositionResponse)
	if err := c.write(ctx, MethodSavePosition, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// ClosePosition (method 17) closes a position fully or partly.
func (c *Client) ClosePosition(ctx context.Context, req *ClosePositionRequest) (*ClosePositionResponse, error) {
	r, resp := *req, new(ClosePositionResponse)
	if err := c.write(ctx, MethodClosePosition, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// PublishTradeEvent (method 18).
func (c *Client) PublishTradeEvent(ctx context.Context, req *PublishTradeEventRequest) (*PublishTradeEventResponse, error) {
	r, resp := *req, new(PublishTradeEventResponse)
	if err := c.write(ctx, MethodPublishTradeEvent, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetOpenPositions (method 19).
func (c *Client) GetOpenPositions(ctx context.Context, modelID string) (*GetOpenPositionsResponse, error) {
	resp := new(GetOpenPositionsResponse)
	if err := c.read(ctx, MethodGetOpenPositions, &GetOpenPositionsRequest{ModelID: modelID}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetRecentTrades (method 20). limit 0 means the default, 20.
func (c *Client) GetRecentTrades(ctx context.Context, modelID string, limit uint32) (*GetRecentTradesResponse, error) {
	if limit == 0 {
		limit = 20
	}
	resp := new(GetRecentTradesResponse)
	if err := c.read(ctx, MethodGetRecentTrades, &GetRecentTradesRequest{ModelID: modelID, Limit: limit}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// SaveSnapshot (method 32).
func (c *Client) SaveSnapshot(ctx context.Context, req *SaveSnapshotRequest) (*SaveSnapshotResponse, error) {
	r, resp := *req, new(SaveSnapshotResponse)
	if err := c.write(ctx, MethodSaveSnapshot, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// RecordDecisionCycle (method 33).
func (c *Client) RecordDecisionCycle(ctx context.Context, req *RecordDecisionCycleRequest) (*RecordDecisionCycleResponse, error) {
	r, resp := *req, new(RecordDecisionCycleResponse)
	if err := c.write(ctx, MethodRecordDecisionCycle, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// UpdateAnalytics (method 34).
func (c *Client) UpdateAnalytics(ctx context.Context, req *UpdateAnalyticsRequest) (*UpdateAnalyticsResponse, error) {
	r, resp := *req, new(UpdateAnalyticsResponse)
	if err := c.write(ctx, MethodUpdateAnalytics, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// SaveTraderState (method 35).
func (c *Client) SaveTraderState(ctx context.Context, req *SaveTraderStateRequest) (*TraderStateResponse, error) {
	r, resp := *req, new(TraderStateResponse)
	if err := c.write(ctx, MethodSaveTraderState, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetTraderState (method 36). Nothing stored → not_found.
func (c *Client) GetTraderState(ctx context.Context, traderID string) (*TraderStateResponse, error) {
	resp := new(TraderStateResponse)
	if err := c.read(ctx, MethodGetTraderState, &GetTraderStateRequest{TraderID: traderID}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetLastDecision (method 37). Nothing recorded → not_found.
func (c *Client) GetLastDecision(ctx context.Context, modelID string) (*LastDecision, error) {
	resp := new(LastDecision)
	if err := c.read(ctx, MethodGetLastDecision, &GetLastDecisionRequest{ModelID: modelID}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetLeaderboard (method 38). limit 0 means the default, 100.
func (c *Client) GetLeaderboard(ctx context.Context, limit uint32) (*GetLeaderboardResponse, error) {
	if limit == 0 {
		limit = 100
	}
	resp := new(GetLeaderboardResponse)
	if err := c.read(ctx, MethodGetLeaderboard, &GetLeaderboardRequest{Limit: limit}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// RecordConversation (method 39). Servers that do not advertise 39 in HelloOk's methods answer unimplemented.
func (c *Client) RecordConversation(ctx context.Context, req *RecordConversationRequest) (*RecordConversationResponse, error) {
	r, resp := *req, new(RecordConversationResponse)
	if err := c.write(ctx, MethodRecordConversation, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// IngestPriceTicks (method 48).
func (c *Client) IngestPriceTicks(ctx context.Context, req *IngestPriceTicksRequest) (*IngestPriceTicksResponse, error) {
	r, resp := *req, new(IngestPriceTicksResponse)
	if err := c.write(ctx, MethodIngestPriceTicks, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// UpsertMarketAssets (method 49).
func (c *Client) UpsertMarketAssets(ctx context.Context, req *UpsertMarketAssetsRequest) (*UpsertCountResponse, error) {
	r, resp := *req, new(UpsertCountResponse)
	if err := c.write(ctx, MethodUpsertMarketAssets, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// UpsertAssetContexts (method 50).
func (c *Client) UpsertAssetContexts(ctx context.Context, req *UpsertAssetContextsRequest) (*UpsertCountResponse, error) {
	r, resp := *req, new(UpsertCountResponse)
	if err := c.write(ctx, MethodUpsertAssetContexts, &r, &r.IdempotencyKey, resp); err != nil {
		return nil, err
	}
	return resp, nil
}
