import BenchSupport
import KubeRuntime

// One pass of framing + decoding + store update + dispatch over N generated Pod
// events, in `countedPass` only; `kubetrace-bench instructions` runs this under
// `valgrind --tool=callgrind --toggle-collect=*countedPass*` and divides by N.
let arguments = CommandLine.arguments
let events = arguments.count > 1 ? Int(arguments[1]) ?? 2_000 : 2_000
var generator = SampleStream(seed: 42)
let bytes = Array((0..<events).map { generator.podEvent(type: "ADDED", index: $0, resourceVersion: 1000 + $0) }.joined().utf8)

@inline(never)
func countedPass(_ bytes: [UInt8], chunk: Int) throws -> Int {
    var processor = WatchStreamProcessor<PodProjection>()
    var batch: [WatchEvent<PodProjection>] = []
    var count = 0
    var offset = 0
    try bytes.withUnsafeBytes { all in
        while offset < all.count {
            let end = min(offset + chunk, all.count)
            _ = try processor.consume(UnsafeRawBufferPointer(rebasing: all[offset..<end]), into: &batch)
            count += batch.count
            batch.removeAll(keepingCapacity: true)
            offset = end
        }
    }
    return count
}

let seen = try countedPass(bytes, chunk: 16_384)
print("counted pass: \(seen) events")
