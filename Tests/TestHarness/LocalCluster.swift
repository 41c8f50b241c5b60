import Foundation
import Hiredis
import LibPQ
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the server binaries are, and whom to run PostgreSQL as.
struct ServiceTools: Sendable {
    var initdb: String
    var postgres: String
    var pgCtl: String
    var redisServer: String
    /// Set when running as root: PostgreSQL refuses root, so its commands go through `runuser -u postgres --`.
    var serviceUser: (name: String, uid: uid_t, gid: gid_t, runuser: String)?

    static let installHint = "install them with `apt-get install postgresql redis-server`, or point the tests at "
        + "running services by setting both ENGINE_STORE_TEST_POSTGRES_URL and ENGINE_STORE_TEST_REDIS_URL"

    static func locate(environment: [String: String]) throws -> ServiceTools {
        let fm = FileManager.default
        let pathDirs = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)

        // PostgreSQL 15 first, then any other installed major version (newest first), then $PATH.
        var pgDirs = ["/usr/lib/postgresql/15/bin"]
        if let versions = try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql") {
            pgDirs += versions.compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        }
        pgDirs += pathDirs
        guard let pgBin = pgDirs.first(where: { dir in
            ["initdb", "postgres", "pg_ctl"].allSatisfy { fm.isExecutableFile(atPath: "\(dir)/\($0)") }
        }) else {
            throw TestServicesError(
                "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found in /usr/lib/postgresql/*/bin or "
                    + "$PATH; \(installHint)")
        }
        guard let redisServer = (["/usr/bin"] + pathDirs).map({ "\($0)/redis-server" })
            .first(where: { fm.isExecutableFile(atPath: $0) })
        else {
            throw TestServicesError("redis-server not found in /usr/bin or $PATH; \(installHint)")
        }

        var tools = ServiceTools(initdb: "\(pgBin)/initdb", postgres: "\(pgBin)/postgres", pgCtl: "\(pgBin)/pg_ctl",
                                 redisServer: redisServer, serviceUser: nil)
        if geteuid() == 0 {
            guard let pw = getpwnam("postgres") else {
                throw TestServicesError(
                    "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` system user "
                        + "to run it as; `apt-get install postgresql` creates it")
            }
            guard let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"]
                .first(where: { fm.isExecutableFile(atPath: $0) })
            else {
                throw TestServicesError(
                    "running as root needs `runuser` to start PostgreSQL as the postgres user; "
                        + "`apt-get install util-linux` provides it")
            }
            tools.serviceUser = ("postgres", pw.pointee.pw_uid, pw.pointee.pw_gid, runuser)
        }
        return tools
    }

    /// The executable and arguments that run `tool` as PostgreSQL's user.
    func asPostgresUser(_ tool: String, _ arguments: [String]) -> (String, [String]) {
        guard let user = serviceUser else { return (tool, arguments) }
        return (user.runuser, ["-u", user.name, "--", tool] + arguments)
    }
}

/// A throwaway PostgreSQL cluster and Redis server in `/tmp/engine-store-test-XXXXXX`.
///
/// Layout: `pg/data` (cluster), `pg/.s.PGSQL.5432` (socket), `redis/` (working dir and pid file),
/// `redis.sock`, and one log file per program.
final class LocalCluster: Sendable {
    static let pgPort = 5432
    static let readyTimeout: Duration = .seconds(30)
    static let pollInterval: useconds_t = 50_000

    let root: String
    let tools: ServiceTools
    let environment: [String: String]

    var pgDir: String { "\(root)/pg" }
    var pgData: String { "\(root)/pg/data" }
    var pgSocketDir: String { pgDir }
    var redisDir: String { "\(root)/redis" }
    var redisSocket: String { "\(root)/redis.sock" }
    var redisPidFile: String { "\(root)/redis/redis.pid" }
    var redisURL: String { "unix://\(redisSocket)" }
    var adminConninfo: String { conninfo(database: "postgres") }

    func conninfo(database: String) -> String {
        "host=\(pgSocketDir) port=\(Self.pgPort) user=postgres dbname=\(database)"
    }

    func log(_ name: String) -> String { "\(root)/\(name).log" }

    /// The running server processes (for PostgreSQL as root: the `runuser` wrapper around the postmaster).
    /// Each lock is held for a whole stop/start, which serializes concurrent fault-injection calls.
    private let redisProcess = Mutex<Process?>(nil)
    private let postgresProcess = Mutex<Process?>(nil)

    private init(root: String, tools: ServiceTools, environment: [String: String]) {
        self.root = root
        self.tools = tools
        self.environment = environment
    }

    // MARK: Start-up

    static func start() throws -> LocalCluster {
        let env = ProcessInfo.processInfo.environment
        let tools = try ServiceTools.locate(environment: env)
        let root = try makeTempDirectory()
        // Children must not pick up PG* settings (PGPORT, PGDATA, …) meant for some other server.
        let childEnv = env.filter { !$0.key.hasPrefix("PG") }
        let cluster = LocalCluster(root: root, tools: tools, environment: childEnv)
        do {
            try cluster.prepareDirectories()
            // The watchdog goes first so that even a half-finished start-up is cleaned up after exit.
            try cluster.launchWatchdog()
            try cluster.initdb()
            try cluster.startPostgres()
            try cluster.startRedis()
            return cluster
        } catch {
            cluster.abandon()
            throw error
        }
    }

    private static func makeTempDirectory() throws -> String {
        // Directly under /tmp (not $TMPDIR): socket paths must stay under 108 bytes.
        var template = Array("/tmp/engine-store-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buf in
            mkdtemp(buf.baseAddress!).map { String(cString: $0) }
        }
        guard let path = made else {
            throw TestServicesError("mkdtemp under /tmp failed: \(String(cString: strerror(errno)))")
        }
        // Traversable by the postgres user when we run as root.
        guard chmod(path, 0o755) == 0 else {
            throw TestServicesError("chmod 0755 \(path) failed: \(String(cString: strerror(errno)))")
        }
        return path
    }

    private func prepareDirectories() throws {
        for (dir, mode) in [(pgDir, mode_t(0o700)), (redisDir, mode_t(0o755))] {
            guard mkdir(dir, mode) == 0 else {
                throw TestServicesError("mkdir \(dir) failed: \(String(cString: strerror(errno)))")
            }
        }
        for name in ["initdb", "postgres", "pg_ctl", "redis"] {
            guard FileManager.default.createFile(atPath: log(name), contents: nil) else {
                throw TestServicesError("cannot create \(log(name))")
            }
        }
        if let user = tools.serviceUser {
            for path in [root, pgDir, redisDir] + ["initdb", "postgres", "pg_ctl", "redis"].map(log) {
                guard chown(path, user.uid, user.gid) == 0 else {
                    throw TestServicesError("chown \(path) to \(user.name) failed: \(String(cString: strerror(errno)))")
                }
            }
        }
    }

    private func initdb() throws {
        let (exe, args) = tools.asPostgresUser(tools.initdb, [
            "-D", pgData, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C",
        ])
        let process = try launch(exe, args, log: "initdb")
        guard waitForExit(process, timeout: .seconds(120)) else {
            process.terminate()
            throw failure("initdb did not finish within 120 s", log: "initdb")
        }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw failure("initdb failed (status \(process.terminationStatus))", log: "initdb")
        }
    }

    // MARK: PostgreSQL

    func startPostgres() throws {
        try postgresProcess.withLock { current in
            if let running = current, running.isRunning {
                if pgAnswers() == nil { return }
                throw failure("PostgreSQL is running but not accepting connections", log: "postgres")
            }
            let (exe, args) = tools.asPostgresUser(tools.postgres, [
                "-D", pgData, "-k", pgSocketDir, "-p", String(Self.pgPort),
                "-c", "listen_addresses=", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=400",
            ])
            let process = try launch(exe, args, log: "postgres")
            current = process
            try waitUntilReady(process, what: "PostgreSQL", log: "postgres") { pgAnswers() }
        }
    }

    func stopPostgres() throws {
        try postgresProcess.withLock { current in
            guard let process = current, process.isRunning else {
                current = nil
                return
            }
            let (exe, args) = tools.asPostgresUser(tools.pgCtl, ["-D", pgData, "stop", "-m", "fast", "-w", "-t", "30"])
            let pgCtl = try launch(exe, args, log: "pg_ctl")
            _ = waitForExit(pgCtl, timeout: .seconds(40))
            if !waitForExit(process, timeout: .seconds(10)) {
                // pg_ctl failed or timed out: immediate shutdown, then the hard way.
                if let pid = postmasterPID() { kill(pid, SIGQUIT) }
                if !waitForExit(process, timeout: .seconds(10)) {
                    if let pid = postmasterPID() { kill(pid, SIGKILL) }
                    if !waitForExit(process, timeout: .seconds(5)) {
                        throw failure("PostgreSQL did not stop", log: "pg_ctl")
                    }
                }
            }
            current = nil
        }
    }

    /// nil when PostgreSQL accepts a connection and runs a query, else why not.
    private func pgAnswers() -> String? {
        do {
            let conn = try PGConnection(conninfo: adminConninfo, connectTimeoutSeconds: 2,
                                        applicationName: "engine-store-test-harness")
            try conn.exec("SELECT 1")
            return nil
        } catch {
            return String(describing: error)
        }
    }

    private func postmasterPID() -> pid_t? {
        guard let text = try? String(contentsOfFile: "\(pgData)/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first else { return nil }
        return pid_t(first.trimmingCharacters(in: .whitespaces))
    }

    /// SIGSTOP (or SIGCONT) to the postmaster and every process it started: the server hangs with its
    /// connections open, unlike a stopped one. The postmaster is stopped first (so it forks nothing
    /// meanwhile) and resumed last.
    func signalPostgres(_ signal: Int32) throws {
        try postgresProcess.withLock { _ in
            guard let pm = postmasterPID() else { throw failure("PostgreSQL has no postmaster.pid", log: "postgres") }
            if signal == SIGSTOP {
                guard kill(pm, SIGSTOP) == 0 else { throw failure("kill(\(pm), SIGSTOP) failed", log: "postgres") }
                // The children are listed once the postmaster has really stopped.
                let deadline = ContinuousClock.now + .seconds(5)
                while Self.processState(pm) != "T" && ContinuousClock.now < deadline { usleep(1000) }
            }
            for child in Self.childPIDs(of: pm) { kill(child, signal) }
            if signal != SIGSTOP { kill(pm, signal) }
        }
    }

    // MARK: Redis

    private var redisEndpoint: RedisEndpoint { RedisEndpoint(address: .unix(path: redisSocket)) }

    func startRedis() throws {
        try redisProcess.withLock { current in
            if let running = current, running.isRunning {
                if redisAnswers() == nil { return }
                throw failure("Redis is running but does not answer PING", log: "redis")
            }
            let process = try launch(tools.redisServer, [
                "--port", "0", "--unixsocket", redisSocket, "--unixsocketperm", "777",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", redisDir, "--pidfile", redisPidFile,
            ], log: "redis")
            current = process
            try waitUntilReady(process, what: "Redis", log: "redis") { redisAnswers() }
        }
    }

    func stopRedis() throws {
        try redisProcess.withLock { current in
            guard let process = current, process.isRunning else {
                current = nil
                return
            }
            if let conn = try? RedisConnection(endpoint: redisEndpoint, timeoutMs: 2000) {
                // The server closes the connection instead of replying: the error is expected.
                _ = try? conn.command(["SHUTDOWN", "NOSAVE"])
            }
            if !waitForExit(process, timeout: .seconds(10)) {
                process.terminate()
                if !waitForExit(process, timeout: .seconds(5)) {
                    kill(process.processIdentifier, SIGKILL)
                    if !waitForExit(process, timeout: .seconds(5)) {
                        throw failure("Redis (pid \(process.processIdentifier)) did not stop", log: "redis")
                    }
                }
            }
            current = nil
        }
    }

    /// SIGSTOP (or SIGCONT) to redis-server: it hangs with its connections open.
    func signalRedis(_ signal: Int32) throws {
        try redisProcess.withLock { current in
            guard let process = current, process.isRunning else { throw failure("Redis is not running", log: "redis") }
            kill(process.processIdentifier, signal)
        }
    }

    /// nil when Redis answers PING with PONG, else why not.
    private func redisAnswers() -> String? {
        do {
            let conn = try RedisConnection(endpoint: redisEndpoint, timeoutMs: 1000)
            let reply = try conn.command(["PING"])
            return reply == .status("PONG") ? nil : "PING answered \(reply)"
        } catch {
            return String(describing: error)
        }
    }

    // MARK: Processes

    /// Starts `executable` in the cluster directory, stdin from /dev/null, stdout and stderr appended to a log.
    private func launch(_ executable: String, _ arguments: [String], log name: String) throws -> Process {
        let fd = open(log(name), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw TestServicesError("cannot open \(log(name)): \(String(cString: strerror(errno)))")
        }
        let logHandle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer { try? logHandle.close() }  // the child has its own copy once launched

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: root, isDirectory: true)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = logHandle
        process.standardError = logHandle
        do {
            try ChildProcess.spawn(process)
        } catch {
            throw TestServicesError("cannot run \(executable): \(error)")
        }
        return process
    }

    /// Polls `check` every 50 ms until it returns nil, the process exits, or 30 s pass.
    private func waitUntilReady(_ process: Process, what: String, log name: String,
                                _ check: () -> String?) throws {
        let deadline = ContinuousClock.now + Self.readyTimeout
        var lastError = "not polled yet"
        while true {
            guard let problem = check() else { return }
            lastError = problem
            if !process.isRunning {
                throw failure("\(what) exited during start-up (status \(process.terminationStatus)); "
                              + "last connection error: \(lastError)", log: name)
            }
            if ContinuousClock.now >= deadline {
                process.terminate()
                throw failure("\(what) not ready after \(Self.readyTimeout); last connection error: \(lastError)",
                              log: name)
            }
            usleep(Self.pollInterval)
        }
    }

    /// Polls until `process` has exited; false on timeout.
    private func waitForExit(_ process: Process, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return false }
            usleep(10_000)
        }
        return true
    }

    private func failure(_ message: String, log name: String) -> TestServicesError {
        let path = log(name)
        var text = message
        // The cause is often far from the end (PostgreSQL may follow it with a long memory-context dump).
        let key = Self.errorLines(of: path)
        if !key.isEmpty { text += "\n--- error lines of \(path) ---\n\(key)" }
        text += "\n--- last lines of \(path) ---\n\(Self.tail(of: path))"
        return TestServicesError(text)
    }

    /// The first lines that look like errors (PostgreSQL FATAL/PANIC/ERROR, initdb/pg_ctl errors, Redis "#").
    static func errorLines(of path: String, maxLines: Int = 12) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        let markers = ["FATAL:", "PANIC:", "ERROR:", "error:", "could not", "# "]
        return String(decoding: data.prefix(1 << 20), as: UTF8.self)
            .split(separator: "\n")
            .filter { line in markers.contains { line.contains($0) } }
            .prefix(maxLines)
            .joined(separator: "\n")
    }

    static func tail(of path: String, maxBytes: Int = 8192, maxLines: Int = 25) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "(cannot read \(path))" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > UInt64(maxBytes) ? size - UInt64(maxBytes) : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let text = lines.suffix(maxLines).joined(separator: "\n")
        return text.isEmpty ? "(empty)" : text
    }

    /// After a failed start-up: stop whatever started and delete the directory (the watchdog then finds nothing).
    private func abandon() {
        redisProcess.withLock { current in
            if let p = current, p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                _ = waitForExit(p, timeout: .seconds(5))
            }
            current = nil
        }
        postgresProcess.withLock { current in
            if let p = current, p.isRunning {
                if let pid = postmasterPID() { kill(pid, SIGQUIT) }
                if !waitForExit(p, timeout: .seconds(10)), let pid = postmasterPID() { kill(pid, SIGKILL) }
            }
            current = nil
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: Watchdog

    /// Swift Testing has no global teardown: a detached shell waits for this process to go away, then stops
    /// PostgreSQL and Redis and deletes the directory. Its stdio is /dev/null so it never holds the test
    /// runner's output pipe open; it ignores SIGINT/SIGHUP so a Ctrl-C still gets cleaned up after
    /// (Foundation starts children in their own process group anyway).
    private func launchWatchdog() throws {
        let runuser = tools.serviceUser?.runuser ?? ""
        let user = tools.serviceUser?.name ?? ""
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", Self.watchdogScript, "engine-store-test-watchdog",
            String(getpid()), Self.processStartTime(getpid()) ?? "", root, tools.pgCtl, user, runuser,
            pgData, redisPidFile,
        ]
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: "/", isDirectory: true)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try ChildProcess.spawn(process)
        } catch {
            throw TestServicesError("cannot start the cleanup watchdog /bin/sh: \(error)")
        }
    }

    /// Field 3 of /proc/<pid>/stat (R, S, T, Z, …); nil when the process is gone.
    static func processState(_ pid: pid_t) -> Character? {
        statFields(pid)?.first?.first
    }

    /// Processes whose parent is `pid` (field 4 of /proc/<child>/stat).
    static func childPIDs(of pid: pid_t) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name in
            guard let child = pid_t(name), let fields = statFields(child), fields.count > 1,
                  pid_t(fields[1]) == pid else { return nil }
            return child
        }
    }

    /// The fields of /proc/<pid>/stat after the command name, starting with field 3 (state).
    private static func statFields(_ pid: pid_t) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Field 22 of /proc/<pid>/stat (start time in clock ticks): tells our process from a later one that
    /// reuses its pid. nil where there is no /proc.
    static func processStartTime(_ pid: pid_t) -> String? {
        guard let fields = statFields(pid) else { return nil }
        // fields[0] is field 3 (state), so field 22 is fields[19].
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// $1 pid to watch, $2 its start time ("" = unknown), $3 directory to delete, $4 pg_ctl, $5 user to run
    /// pg_ctl as ("" = as is), $6 runuser, $7 PostgreSQL data dir, $8 Redis pid file.
    /// `running` treats a zombie as gone: once this process exits, our children are reparented to whatever
    /// reaps orphans, which may take its time (or never do it, in some containers).
    static let watchdogScript = #"""
        trap '' INT HUP PIPE
        P="$1"; T="$2"; D="$3"; PGCTL="$4"; RU="$5"; RUNUSER="$6"; PGD="$7"; RPID="$8"
        running() {
          [ -n "$1" ] || return 1
          if [ -r "/proc/$1/stat" ]; then
            want="$2"
            f=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
            [ -n "$f" ] || return 1
            set -- $f
            [ "$1" != Z ] || return 1
            [ -z "$want" ] || [ "${20}" = "$want" ]
            return
          fi
          kill -0 "$1" 2>/dev/null
        }
        gone_within() {
          i=0
          while running "$1"; do
            [ "$i" -lt "$2" ] || return 1
            sleep 0.05; i=$((i + 1))
          done
        }
        while running "$P" "$T"; do sleep 0.5; done
        if [ -f "$PGD/postmaster.pid" ]; then
          pm=$(head -n 1 "$PGD/postmaster.pid" 2>/dev/null)
          if [ -n "$RU" ]; then
            "$RUNUSER" -u "$RU" -- "$PGCTL" -D "$PGD" stop -m immediate -w -t 15 >/dev/null 2>&1
          else
            "$PGCTL" -D "$PGD" stop -m immediate -w -t 15 >/dev/null 2>&1
          fi
          if ! gone_within "$pm" 100; then
            kill -QUIT "$pm" 2>/dev/null
            gone_within "$pm" 100 || kill -KILL "$pm" 2>/dev/null
          fi
        fi
        if [ -f "$RPID" ]; then
          rp=$(cat "$RPID" 2>/dev/null)
          if running "$rp"; then
            kill -TERM "$rp" 2>/dev/null
            gone_within "$rp" 100 || kill -KILL "$rp" 2>/dev/null
          fi
        fi
        case "$D" in
          /tmp/engine-store-test-*) rm -rf "$D" ;;
        esac
        """#
}
