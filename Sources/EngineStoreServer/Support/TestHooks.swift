/// Points where a test can hold a server thread to force an interleaving (all nil in production).
/// Each receives the Redis keys the step is about to write; blocking in it blocks that thread.
/// The transport hooks simulate descriptor exhaustion.
public struct TestHooks: Sendable {
    /// A Postgres worker committed; its cache mutations are not yet queued for the cache writer.
    public var workerDidCommit: (@Sendable ([String]) -> Void)?
    /// The cache writer is about to send a pipeline of direct-path mutations to Redis.
    public var cacheWriterWillApply: (@Sendable ([String]) -> Void)?
    /// The cache writer's pipeline came back (taken, refused or failed): nothing of it reaches Redis later.
    public var cacheWriterDidApply: (@Sendable ([String]) -> Void)?
    /// The outbox relay read Postgres and is about to write the rebuilt keys to Redis.
    public var relayWillApply: (@Sendable ([String]) -> Void)?
    /// Hydrate holds its Redis lock and is about to rebuild.
    public var hydrateLocked: (@Sendable () -> Void)?
    /// The two-phase path (the hook above runs only there) for every snapshot, instead of the one
    /// round trip of `snapshot_store_batch` for those without marks: the two-phase tests' way in.
    public var snapshotsInTwoPhases = false
    /// SaveSnapshot holds the throttle lock of this model inside its transaction (two-phase path only:
    /// setting it sends every snapshot that way).
    public var snapshotLocked: (@Sendable (String) -> Void)?
    /// Called before each `accept`; a non-zero result is taken as that call's errno (EMFILE, ENFILE)
    /// instead of accepting.
    public var acceptWillRun: (@Sendable () -> Int32)?
    /// Client connections the descriptor limit leaves room for, instead of the figure computed from
    /// RLIMIT_NOFILE at start.
    public var descriptorBudget: Int?
    public init() {}
}
