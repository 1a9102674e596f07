import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
import Testing

/// Files holding secrets are created with mode 0600 in the `open` call itself
/// (`O_CREAT|O_EXCL`, 0600), never wider for a moment (issue #19). A later chmod cannot
/// take back a descriptor opened in between, so the test reads the system calls the
/// real binaries make, with strace, rather than the modes the files end up with.
@Suite(.timeLimit(.minutes(2))) struct SecretFileModeTests {
    /// Every `open`/`openat` that creates a file under `dir`: its path, flags and mode.
    struct Creation: CustomStringConvertible {
        var path: String
        var flags: String
        var mode: String
        var description: String { "\(path) \(flags) \(mode)" }
    }

    static func creations(in log: String, under dir: String) -> [Creation] {
        log.split(separator: "\n").compactMap { line -> Creation? in
            guard line.contains("open"), line.contains("O_CREAT"), let quote = line.firstIndex(of: "\"") else { return nil }
            let rest = line[line.index(after: quote)...]
            guard let end = rest.firstIndex(of: "\"") else { return nil }
            let path = String(rest[..<end])
            guard path.hasPrefix(dir) else { return nil }
            let args = rest[rest.index(after: end)...].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            // `, O_WRONLY|O_CREAT|…, 0600) = 3` after the path.
            guard args.count >= 2 else { return nil }
            let mode = args[1].split(separator: ")").first.map(String.init) ?? ""
            return Creation(path: path, flags: args[0], mode: mode)
        }
    }

    static func strace(_ log: String, _ executable: String, _ args: [String], environment: [String: String] = [:]) async throws -> ProcessResult {
        try await run("strace", ["-f", "-qq", "-e", "trace=open,openat,creat", "-o", log, binaryDirectory().appendingPathComponent(executable).path] + args,
                      environment: environment)
    }

    /// Each file in `secret` is created, and every file created in the directory is created
    /// exclusively with mode 0600, except the `public` ones (non-secret, 0644 by design).
    static func expectPrivate(_ files: [Creation], secret: [String], public publicNames: [String] = []) {
        func name(_ c: Creation) -> String { (c.path as NSString).lastPathComponent }
        for s in secret {
            #expect(files.contains { name($0).contains(s) }, "\(s) was created: \(files)")
        }
        for c in files {
            if publicNames.contains(where: { name(c).contains($0) }) { continue }
            #expect(c.flags.contains("O_EXCL"), "created exclusively: \(c)")
            #expect(c.mode == "0600", "created 0600 in the open call: \(c)")
        }
    }

    @Test func theManifestIsCreated0600() async throws {
        try await DevCluster.withRunning { cluster in
            let suite = InstallIntegrationTests()
            let s = try await suite.setup(cluster)
            let out = "\(s.dir.path)/out/kubetrace-operator.yaml"
            try FileManager.default.createDirectory(atPath: "\(s.dir.path)/out", withIntermediateDirectories: true)
            let log = "\(s.dir.path)/strace.log"
            let r = try await Self.strace(log, "kubetrace-operator", suite.manifestArgs(s, output: out))
            #expect(r.status == 0, "\(r.stderr)")
            let files = Self.creations(in: try String(contentsOfFile: log, encoding: .utf8), under: "\(s.dir.path)/out")
            Self.expectPrivate(files, secret: ["kubetrace-operator.yaml"])
            let attributes = try FileManager.default.attributesOfItem(atPath: out)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
        }
    }

    @Test func theBackupIsCreated0600() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await BackupRestoreTests().setup(cluster)
            let outDir = "\(s.dir.path)/out"
            try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
            let log = "\(s.dir.path)/strace.log"
            let r = try await Self.strace(log, "kubetrace-operator", ["backup", "--kubeconfig", s.kubeconfig, "--recipient", s.key.recipient, "--output", "\(outDir)/credentials.age"])
            #expect(r.status == 0, "\(r.stderr)")
            Self.expectPrivate(Self.creations(in: try String(contentsOfFile: log, encoding: .utf8), under: outDir), secret: ["credentials.age"])
        }
    }

    @Test func theDevclusterStateFilesAreCreated0600() async throws {
        let dir = TempDir()
        let state = "\(dir.path)/state"
        let log = "\(dir.path)/strace.log"
        // The devcluster runs until stopped: start it under strace, wait for its "ready" line
        // (logged once the state is written), stop it, wait for the exit.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/strace")
        process.arguments = ["-f", "-qq", "-e", "trace=open,openat,creat", "-o", log,
                             binaryDirectory().appendingPathComponent("kubetrace-devcluster").path, "--state-dir", state]
        let stderr = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        let (exited, exit) = AsyncStream.makeStream(of: Int32.self)
        process.terminationHandler = { exit.yield($0.terminationStatus); exit.finish() }
        try process.run()
        defer { if process.isRunning { process.interrupt() } }
        let lines = LogSink()
        let reader = stderr.fileHandleForReading
        onOwnThread {
            var pending = Data()
            while case let chunk = reader.availableData, !chunk.isEmpty {
                pending.append(chunk)
                while let nl = pending.firstIndex(of: 10) {
                    lines.append(String(decoding: pending[..<nl], as: UTF8.self))
                    pending = Data(pending[(nl + 1)...])
                }
            }
        }
        try await lines.waitFor("kubetrace-devcluster ready", timeout: .seconds(30))
        // SIGTERM to the devcluster itself (the first pid strace logs); strace exits with it.
        let traced = try String(contentsOfFile: log, encoding: .utf8)
        let pid = try #require(traced.split(separator: " ", maxSplits: 1).first.flatMap { Int32($0) })
        kill(pid, SIGTERM)
        _ = try await within(.seconds(30), "the devcluster stops on SIGTERM") { await exited.first { _ in true } }
        let files = Self.creations(in: try String(contentsOfFile: log, encoding: .utf8), under: state)
        // install.env names files and URLs, never their contents: public, as api_url.
        Self.expectPrivate(files, secret: ["kubeconfig", "operator_token", "vultr_api_key"], public: ["port", "api_url", "ca.crt", "install.env"])
    }

    @Test func privateFileWritesWholeOrNothing() throws {
        let dir = TempDir()
        let path = "\(dir.path)/secret"
        try PrivateFile.write("one", to: path)
        try PrivateFile.write("two", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two")
        #expect((try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) == 0o600)
        // A directory that cannot be written: a clear error naming the file, and nothing left behind.
        let missing = "\(dir.path)/no/such/dir/secret"
        #expect(throws: PrivateFile.WriteError.self) { try PrivateFile.write("x", to: missing) }
        do { try PrivateFile.write("x", to: missing) } catch {
            #expect(error.description.hasPrefix("cannot write \(missing): create: No such file or directory"))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["secret"])
    }
}
