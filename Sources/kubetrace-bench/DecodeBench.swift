import KubetraceFormats
import ArgumentParser
import BenchSupport
import Foundation
import KubeClient
import KubeRuntime

/// Decode + dispatch from a recorded stream, in process, on one core.
struct DecodeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decode", abstract: "Framing + decoding + store update + dispatch from a recorded watch stream.")

    @Option(help: "Events per stream.") var events = 200_000
    @Option(help: "Chunk size, as libcurl hands them over.") var chunk = 16_384
    @Option(help: "Passes over each stream; the best is reported.") var passes = 3
    @Option(help: "Only this stream (secrets or pods), e.g. for profiling.") var only: String?
    @Option(help: "Where to write the JSON figures.") var output: String?

    func run() async throws {
        var figures: [(String, Double)] = []
        var gen = SampleStream(seed: 42)
        if only != "pods" {
        let secretBytes = Array((0..<events).map { gen.secretEvent(type: $0 < 10_000 ? "ADDED" : "MODIFIED", index: $0 % 10_000, resourceVersion: 1000 + $0) }.joined().utf8)
        let s = try measure(ManagedSecret.self, secretBytes)
        figures += [("secret_events_per_s", s.perSecond), ("secret_mb_per_s", s.mbPerSecond), ("secret_event_bytes", Double(secretBytes.count / events))]
        }
        if only != "secrets" {
        let podCount = events / 2
        let podBytes = Array((0..<podCount).map { gen.podEvent(type: $0 < 10_000 ? "ADDED" : "MODIFIED", index: $0 % 10_000, resourceVersion: 1000 + $0) }.joined().utf8)
        let p = try measure(PodProjection.self, podBytes)
        figures += [("pod_events_per_s", p.perSecond), ("pod_mb_per_s", p.mbPerSecond), ("pod_event_bytes", Double(podBytes.count / podCount))]
        }
        DevClusterBench.report(figures, output: output)
    }

    /// Best of three passes over the stream.
    func measure<P: Projection>(_ type: P.Type, _ bytes: [UInt8]) throws -> (perSecond: Double, mbPerSecond: Double) {
        var best = Double.infinity
        var delivered = 0
        for _ in 0..<passes {
            var processor = WatchStreamProcessor<P>(keptSecretValues: ManagedSecretKeys.keptKeys)
            var batch: [WatchEvent<P>] = []
            batch.reserveCapacity(256)
            var count = 0
            let clock = ContinuousClock()
            let t0 = clock.now
            var offset = 0
            try bytes.withUnsafeBytes { all in
                while offset < all.count {
                    let end = min(offset + chunk, all.count)
                    _ = try processor.consume(UnsafeRawBufferPointer(rebasing: all[offset..<end]), into: &batch)
                    count += batch.count  // dispatch: the consumer sees each event
                    batch.removeAll(keepingCapacity: true)
                    offset = end
                }
            }
            best = min(best, (clock.now - t0).seconds)
            delivered = count
        }
        return (Double(delivered) / best, Double(bytes.count) / best / 1e6)
    }
}
