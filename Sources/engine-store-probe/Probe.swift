import ArgumentParser
import EngineStoreClient
import Foundation

/// Health probe for containers and init systems.
/// Exit codes: 0 healthy, 1 degraded (Redis down: writes work, caches lag), 2 unhealthy or unreachable.
@main
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine-store-probe",
        abstract: "Check EngineStore, and Postgres and Redis through it.",
        discussion: "Exit status: 0 healthy, 1 degraded (Redis unavailable), 2 unhealthy or unreachable.")

    @Option(help: "Unix socket path (env ENGINE_STORE_SOCKET).")
    var socket: String?
    @Option(help: "Seconds to wait for an answer.")
    var timeout: Double = 2
    @Flag(help: "Print one JSON object instead of a summary.")
    var json = false
    @Flag(help: "Print the service's metrics (Prometheus text format) instead of checking health.")
    var metrics = false

    func run() async throws {
        guard let path = socket ?? ProcessInfo.processInfo.environment["ENGINE_STORE_SOCKET"] else {
            throw ValidationError("set --socket or ENGINE_STORE_SOCKET")
        }
        var config = ClientConfiguration(socketPath: path)
        config.defaultTimeout = .milliseconds(Int(timeout * 1000))
        config.clientName = "engine-store-probe"
        let client = EngineStoreClient(configuration: config)
        if metrics {
            do {
                print(try await client.stats(), terminator: "")
                await client.close()
                return
            } catch {
                print("unreachable: \(error)")
                await client.close()
                throw ExitCode(2)
            }
        }
        let status: Int32
        do {
            let h = try await client.health(timeout: config.defaultTimeout)
            status = h.status == .ok ? 0 : (h.status == .degraded ? 1 : 2)
            print(json ? Self.json(h) : Self.summary(h))
        } catch {
            status = 2
            if json {
                print("{\"status\":\"unreachable\",\"error\":\(Self.quote("\(error)"))}")
            } else {
                print("unreachable: \(error)")
            }
        }
        await client.close()
        throw ExitCode(status)
    }

    static func summary(_ h: HealthResponse) -> String {
        func part(_ name: String, _ c: ComponentHealth) -> String {
            c.ok ? "\(name) ok (\(c.latencyMicros) µs)" : "\(name) DOWN (\(c.error ?? "no answer"))"
        }
        return "\(h.status): service ok (instance \(h.instanceID), v\(h.serverVersion), up \(h.uptimeMs / 1000) s, \(h.openConnections) connections); "
            + part("postgres", h.postgres) + "; " + part("redis", h.redis)
    }

    static func json(_ h: HealthResponse) -> String {
        func part(_ c: ComponentHealth) -> String {
            "{\"ok\":\(c.ok),\"latency_us\":\(c.latencyMicros)" + (c.error.map { ",\"error\":\(quote($0))" } ?? "") + "}"
        }
        return "{\"status\":\"\(h.status)\",\"instance_id\":\(quote(h.instanceID)),\"server_version\":\(quote(h.serverVersion)),"
            + "\"uptime_ms\":\(h.uptimeMs),\"open_connections\":\(h.openConnections),"
            + "\"postgres\":\(part(h.postgres)),\"redis\":\(part(h.redis))}"
    }

    static func quote(_ s: String) -> String {
        let data = try? JSONSerialization.data(withJSONObject: [s])
        let text = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
        return String(text.dropFirst().dropLast())
    }
}
