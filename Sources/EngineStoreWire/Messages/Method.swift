/// Method ids carried in the frame header. Numbers are stable forever; new methods take new numbers.
/// Families: 1–15 session and operations, 16–31 positions and trades, 32–47 account and analytics,
/// 48–63 market data.
public enum Method: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case hello = 1
    case health = 2
    case stats = 3
    case hydrate = 4
    case checkConsistency = 5
    case ping = 6

    case savePosition = 16
    case closePosition = 17
    case publishTradeEvent = 18
    case getOpenPositions = 19
    case getRecentTrades = 20

    case saveSnapshot = 32
    case recordDecisionCycle = 33
    case updateAnalytics = 34
    case saveTraderState = 35
    case getTraderState = 36
    case getLastDecision = 37
    case getLeaderboard = 38
    case recordConversation = 39

    case ingestPriceTicks = 48
    case upsertMarketAssets = 49
    case upsertAssetContexts = 50

    public var description: String {
        switch self {
        case .hello: "Hello"
        case .health: "Health"
        case .stats: "Stats"
        case .hydrate: "Hydrate"
        case .checkConsistency: "CheckConsistency"
        case .ping: "Ping"
        case .savePosition: "SavePosition"
        case .closePosition: "ClosePosition"
        case .publishTradeEvent: "PublishTradeEvent"
        case .getOpenPositions: "GetOpenPositions"
        case .getRecentTrades: "GetRecentTrades"
        case .saveSnapshot: "SaveSnapshot"
        case .recordDecisionCycle: "RecordDecisionCycle"
        case .updateAnalytics: "UpdateAnalytics"
        case .saveTraderState: "SaveTraderState"
        case .getTraderState: "GetTraderState"
        case .getLastDecision: "GetLastDecision"
        case .getLeaderboard: "GetLeaderboard"
        case .recordConversation: "RecordConversation"
        case .ingestPriceTicks: "IngestPriceTicks"
        case .upsertMarketAssets: "UpsertMarketAssets"
        case .upsertAssetContexts: "UpsertAssetContexts"
        }
    }
}
