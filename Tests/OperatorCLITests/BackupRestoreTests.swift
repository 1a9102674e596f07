import KubetraceTestKit
import Foundation
import KubeClient
import KubeSim
@testable import KubetraceOperator
import Testing

/// `backup` / `restore` against the devcluster, with the real `age` on the other side.
@Suite(.timeLimit(.minutes(2))) struct BackupRestoreTests {
    static let ns = "kubetrace-system"
    static let names = ["kubetrace-operator", "kubetrace-registry", "kubetrace-kubeconfig"]
    static let pullCanary = "pull-canary-5d1e"
    static let kubeconfigCanary = "kubeconfig-canary-93b0"
    /// A secret key given where a recipient belongs.
    static let secretKeyCanary = AgeIdentity.generate().encoded

    struct Setup {
        let dir: TempDir
        let kubeconfig: String
        let client: KubeClient
        let key: AgeFormatTests.Key
    }

    func setup(_ cluster: DevCluster) async throws -> Setup {
        let dir = TempDir()
        let client = try await cliClient(cluster)
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: Self.ns)))
        _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-operator", namespace: Self.ns, labels: ["app.kubernetes.io/managed-by": "kubetrace-operator"]),
                                           type: "Opaque", data: ["operator_token": SecretBytes(cluster.operatorToken)]))
        _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-registry", namespace: Self.ns), type: "kubernetes.io/dockerconfigjson",
                                           data: [".dockerconfigjson": SecretBytes(#"{"auths":{"blr.vultrcr.com":{"username":"u","password":"\#(Self.pullCanary)"}}}"#)]))
        _ = try await client.create(Secret(metadata: ObjectMeta(name: "kubetrace-kubeconfig", namespace: Self.ns, annotations: ["kubectl.kubernetes.io/last-applied-configuration": "{}"]),
                                           type: "Opaque", data: ["kubeconfig": SecretBytes("token: \(Self.kubeconfigCanary)\n")]))
        return Setup(dir: dir, kubeconfig: dir.write("kubeconfig", cluster.kubeconfigYAML(server: await cluster.url())),
                     client: client, key: try await AgeFormatTests.keygen(dir, "backup-key"))
    }

    func secrets(_ client: KubeClient) async throws -> [String: Secret] {
        var out: [String: Secret] = [:]
        for s in try await client.list(Secret.self, namespace: Self.ns).items { out[s.metadata.name ?? ""] = s }
        return out
    }

    @Test func backupDeleteRestoreAndTheOperatorUsesThem() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let original = try await secrets(s.client)
            let file = "\(s.dir.path)/credentials.age"
            let backup = try await runCLI(["backup", "--kubeconfig", s.kubeconfig, "--recipient", s.key.recipient, "--output", file])
            #expect(backup.status == 0, "\(backup.stderr)")
            #expect(backup.stderr.contains("backed up kubetrace-system/kubetrace-operator, kubetrace-system/kubetrace-registry, kubetrace-system/kubetrace-kubeconfig"), "\(backup.stderr)")
            let sealed = try #require(FileManager.default.contents(atPath: file))
            #expect(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int == 0o600)
            // Nothing readable in the file, nothing but it in the directory (no plaintext left behind).
            for canary in [cluster.operatorToken, Self.pullCanary, Self.kubeconfigCanary] {
                #expect(sealed.range(of: Data(canary.utf8)) == nil)
                #expect(sealed.range(of: Data(Data(canary.utf8).base64EncodedString().prefix(16).utf8)) == nil)
                #expect(!backup.stderr.contains(canary) && !backup.stdout.contains(canary))
            }
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: s.dir.path).filter { $0.contains("credentials") }
            #expect(leftovers == ["credentials.age"], "\(leftovers)")

            // The real age decrypts it: a v1 List that kubectl could apply.
            let plain = try await runTool("age", ["-d", "-i", s.key.identityFile, file])
            #expect(plain.status == 0, "\(plain.stderr)")
            let list = try JSONValue.parse(Array(plain.stdout.utf8))
            #expect(list["kind"]?.stringValue == "List")
            let items = list["items"]?.arrayValue ?? []
            #expect(items.compactMap { $0["metadata"]?["name"]?.stringValue } == Self.names)
            #expect(items.allSatisfy { $0["metadata"]?["resourceVersion"] == nil && $0["metadata"]?["uid"] == nil })
            #expect(items[2]["metadata"]?["annotations"] == nil, "last-applied-configuration is not carried")
            #expect(items[0]["data"]?["operator_token"]?.stringValue == Data(cluster.operatorToken.utf8).base64EncodedString())

            // Delete them all; restore; identical content.
            for name in Self.names { try await s.client.delete(Secret.self, namespace: Self.ns, name: name) }
            let restore = try await runCLI(["restore", "--kubeconfig", s.kubeconfig, "--identity", s.key.identityFile, file])
            #expect(restore.status == 0, "\(restore.stderr)")
            #expect(restore.stdout == Self.names.map { "created kubetrace-system/\($0)\n" }.joined(), "\(restore.stdout)")
            let restored = try await secrets(s.client)
            for name in Self.names {
                #expect(restored[name]?.data == original[name]?.data && restored[name]?.type == original[name]?.type, "\(name)")
                #expect(restored[name]?.metadata.labels == original[name]?.metadata.labels)
            }
            // Again: nothing to do.
            let again = try await runCLI(["restore", "--kubeconfig", s.kubeconfig, "--identity", s.key.identityFile, file])
            #expect(again.stdout == Self.names.map { "unchanged kubetrace-system/\($0)\n" }.joined(), "\(again.stdout)")

            // The operator works from the restored Secrets: its refresh uses the restored operator token.
            let api = await cluster.url() + "/kubetrace-api"
            let ca = s.dir.write("ca.crt", cluster.certificateAuthority!.certificate.certificatePEM)
            let op = try OperatorProcess(["run", "--kubeconfig", s.kubeconfig, "--namespace", Self.ns, "--api-url", api, "--ca-file", ca, "--cluster-id", "c-1"],
                                         dir: s.dir, name: "op", environment: ["LOG_FORMAT": "text"])
            do { try await op.lines.waitFor("token_refreshed", timeout: .seconds(30)) } catch { Issue.record("\(op.log)"); throw error }
            #expect(try await op.stop() == 0)
            #expect(!op.log.contains(cluster.operatorToken) && !op.log.contains(Self.pullCanary))
        }
    }

    @Test func differingSecretsAreKeptUnlessOverwriteAndAgeFilesRestore() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            // A backup written by the real age: the registry Secret with other content.
            var registry = try await s.client.get(Secret.self, namespace: Self.ns, name: "kubetrace-registry")
            let newer = #"{"auths":{"blr.vultrcr.com":{"username":"u","password":"from-age"}}}"#
            let item: JSONValue = .object(["apiVersion": .string("v1"), "kind": .string("Secret"), "type": .string("kubernetes.io/dockerconfigjson"),
                                           "metadata": .object(["name": .string("kubetrace-registry"), "namespace": .string(Self.ns)]),
                                           "data": .object([".dockerconfigjson": .string(Data(newer.utf8).base64EncodedString())])])
            let plainFile = s.dir.write("list.json", String(decoding: JSONValue.object(["apiVersion": .string("v1"), "kind": .string("List"), "items": .array([item])]).jsonBytes(), as: UTF8.self))
            let file = "\(s.dir.path)/from-age.age"
            #expect(try await runTool("age", ["-r", s.key.recipient, "-o", file, plainFile]).status == 0)

            let kept = try await runCLI(["restore", "--kubeconfig", s.kubeconfig, "--identity", s.key.identityFile, file])
            #expect(kept.status == 0)
            #expect(kept.stdout == "kept kubetrace-system/kubetrace-registry (differs from the backup; --overwrite replaces it)\n", "\(kept.stdout)")
            #expect(try await s.client.get(Secret.self, namespace: Self.ns, name: "kubetrace-registry").data == registry.data)

            let replaced = try await runCLI(["restore", "--kubeconfig", s.kubeconfig, "--identity", s.key.identityFile, "--overwrite", file])
            #expect(replaced.stdout == "replaced kubetrace-system/kubetrace-registry\n", "\(replaced.stdout)\(replaced.stderr)")
            registry = try await s.client.get(Secret.self, namespace: Self.ns, name: "kubetrace-registry")
            #expect(registry.data?[".dockerconfigjson"]?.string == newer)
        }
    }

    @Test func badInputIsExit2AndChangesNothing() async throws {
        try await DevCluster.withRunning { cluster in
            let s = try await setup(cluster)
            let file = "\(s.dir.path)/b.age"
            #expect(try await runCLI(["backup", "--kubeconfig", s.kubeconfig, "--recipient", s.key.recipient, "--output", file]).status == 0)
            for name in Self.names { try await s.client.delete(Secret.self, namespace: Self.ns, name: name) }
            let sealed = try #require(FileManager.default.contents(atPath: file))
            let stranger = try await AgeFormatTests.keygen(s.dir, "stranger")
            let truncated = "\(s.dir.path)/truncated.age", tampered = "\(s.dir.path)/tampered.age"
            FileManager.default.createFile(atPath: truncated, contents: sealed.prefix(sealed.count - 20))
            var t = sealed
            t[t.count - 30] ^= 0x01
            FileManager.default.createFile(atPath: tampered, contents: t)
            let notKey = s.dir.write("not-a-key.txt", "ssh-ed25519 AAAA…\n")

            let restoreCases: [([String], String)] = [
                (["--identity", stranger.identityFile, file], "\(file): no identity matches this file (wrong --identity?) (tried 1 identity from \(stranger.identityFile))"),
                (["--identity", s.key.identityFile, truncated], "\(truncated): the payload was altered or is incomplete (authentication failed)"),
                (["--identity", s.key.identityFile, tampered], "\(tampered): the payload was altered or is incomplete (authentication failed)"),
                (["--identity", "/nonexistent/key.txt", file], "--identity: cannot read /nonexistent/key.txt"),
                (["--identity", notKey, file], "--identity \(notKey): line 1 is not an age identity"),
                (["--identity", s.key.identityFile, "/nonexistent/b.age"], "/nonexistent/b.age: cannot read"),
                (["--identity", s.key.identityFile, s.kubeconfig], "\(s.kubeconfig): not an age file"),
            ]
            for (args, message) in restoreCases {
                let r = try await runCLI(["restore", "--kubeconfig", s.kubeconfig] + args)
                #expect(r.status == 2, "\(message): \(r.stderr)")
                #expect(r.stderr.contains(message), "expected \(message) in \(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
                #expect(try await secrets(s.client).isEmpty, "nothing written for \(message)")
            }
            let out = "\(s.dir.path)/never.age"
            let backupCases: [([String], String)] = [
                (["--recipient", "ssh-ed25519 AAAAC3Nza", "--output", out], "SSH keys are not supported"),
                (["--recipient", String(s.key.recipient.dropLast()) + (s.key.recipient.last == "q" ? "p" : "q"), "--output", out], "not valid Bech32 (checksum or characters)"),
                (["--recipient", "age1", "--output", out], "not valid Bech32"),
                (["--output", out], "--recipient: at least one age recipient (age1…) is required"),
                (["--recipient", Self.secretKeyCanary, "--output", out], "--recipient: that is an identity (a secret key), not a recipient"),
            ]
            for (args, message) in backupCases {
                let r = try await runCLI(["backup", "--kubeconfig", s.kubeconfig] + args)
                #expect(r.status == 2, "\(message): \(r.stderr)")
                #expect(r.stderr.contains(message), "expected \(message) in \(r.stderr)")
                #expect(!FileManager.default.fileExists(atPath: out))
                #expect(!r.stderr.contains(Self.secretKeyCanary) && !r.stderr.contains("AGE-SECRET-KEY-1"), "a secret passed by mistake is never echoed")
            }
            // Nothing to back up: a runtime failure (1), no file.
            let empty = try await runCLI(["backup", "--kubeconfig", s.kubeconfig, "--recipient", s.key.recipient, "--output", out])
            #expect(empty.status == 1 && empty.stderr.contains("nothing to back up"), "\(empty.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }

    /// restore reads at most 16 MiB of backup and 64 KiB of identity file: a larger input is a
    /// clear error naming the file, found before anything is decrypted or sent (issue 19).
    @Test func oversizedInputsAreRefusedByName() async throws {
        let dir = TempDir()
        let identity = dir.write("key.txt", "# a key\n\(AgeIdentity.generate().encoded)\n")
        let big = "\(dir.path)/big.age"
        // Sparse: 17 MiB that take no disk.
        #expect(FileManager.default.createFile(atPath: big, contents: Data("age-encryption.org/v1\n".utf8)))
        let handle = try #require(FileHandle(forWritingAtPath: big))
        try handle.truncate(atOffset: 17 << 20)
        try handle.close()
        let r = try await runCLI(["restore", "--kubeconfig", "\(dir.path)/no-kubeconfig", "--identity", identity, big])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("\(big): larger than 16 MiB; a kubetrace-operator backup is far smaller (not a backup?)"), "\(r.stderr)")

        let bigKey = dir.write("big-key.txt", String(repeating: "# comment\n", count: 10_000))
        let k = try await runCLI(["restore", "--kubeconfig", "\(dir.path)/no-kubeconfig", "--identity", bigKey, big])
        #expect(k.status == 2, "\(k.stderr)")
        #expect(k.stderr.contains("--identity \(bigKey): larger than 64 KiB; an age identity file is a few lines"), "\(k.stderr)")
    }
}
