import KubetraceTestKit
import Foundation
import KubeClient
@testable import KubeSim
import Logging
import Synchronization
import Testing

/// A clock tests move by hand (credential and token expiry without waiting).
final class ManualDate: Sendable {
    private let value = Mutex(Date())
    var now: @Sendable () -> Date { { [self] in value.withLock { $0 } } }
    func advance(_ seconds: TimeInterval) { value.withLock { $0 += seconds } }
    /// Back to the wall clock: the Vultr emulator dates what it issues with the real time.
    func catchUp() { value.withLock { $0 = max($0, Date()) } }
}

/// A devcluster whose listener serves the registry emulator, and how to talk to it.
struct RegistryFixture: Sendable {
    static let operatorImage = "blr.vultrcr.com/kubetrace/kubetrace-operator:0.1.0"
    static let images: [String: NodeImage] = [
        operatorImage: NodeImage(reference: operatorImage, executable: "/usr/local/bin/kubetrace-operator", user: (65532, 65532)),
        "busybox": NodeImage(reference: "busybox", executable: "/bin/true"),
    ]
    let cluster: DevCluster
    let registry: RegistryEmulator
    let url: String
    let caPEM: String
    let clock: ManualDate

    static func with(_ body: @Sendable (RegistryFixture) async throws -> Void) async throws {
        try await DevCluster.withRunning { cluster in
            let clock = ManualDate()
            let registry = RegistryEmulator(vultr: cluster.vultr, kubetraceAPI: cluster.kubetraceAPI, images: images, serverURL: { await cluster.url() }, now: clock.now)
            cluster.nodeRoutes.registry = { try await registry.handle($0, body: $1) }
            cluster.kubetraceAPI.configure { $0.now = clock.now }
            try await body(RegistryFixture(cluster: cluster, registry: registry, url: await cluster.url(),
                                           caPEM: cluster.certificateAuthority!.certificate.certificatePEM, clock: clock))
        }
    }

    func send(_ path: String, headers: [(name: String, value: String)] = []) async throws -> HTTPResponse {
        try await send("GET", path, headers: headers)
    }

    func send(_ method: String, _ path: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil) async throws -> HTTPResponse {
        try await CurlTransport.shared.send(HTTPRequest(method: method, url: url + path, headers: headers, body: body), tls: TLSSettings(certificateAuthorityPEM: caPEM))
    }

    /// Docker credentials from the Vultr API, as `manifest` and the operator get them.
    func vultrCredentials(expirySeconds: Int = 3600) async throws -> (user: String, password: String) {
        let r = try await send("OPTIONS", "/vultr/v2/registry/\(DevCluster.vultrRegistryID)/docker-credentials?expiry_seconds=\(expirySeconds)&read_write=false",
                               headers: [("Authorization", "Bearer \(cluster.vultrAPIKey)")])
        #expect(r.status == 200)
        let auth = try JSONValue.parse(r.body)["auths"]?["blr.vultrcr.com"]?["auth"]?.stringValue ?? ""
        let text = String(decoding: Data(base64Encoded: auth) ?? Data(), as: UTF8.self)
        let colon = try #require(text.firstIndex(of: ":"))
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }

    func token(user: String?, password: String?, scope: String = "repository:kubetrace/kubetrace-operator:pull", service: String = "blr.vultrcr.com") async throws -> HTTPResponse {
        var headers: [(name: String, value: String)] = []
        if let user, let password { headers.append(("Authorization", "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())) }
        return try await send("/v2/token?service=\(service)&scope=\(scope)", headers: headers)
    }

    func bearer(_ tokenResponse: HTTPResponse) throws -> [(name: String, value: String)] {
        [("Authorization", "Bearer " + (try JSONValue.parse(tokenResponse.body)["token"]?.stringValue ?? ""))]
    }

    func puller() -> ImagePuller {
        var logger = Logger(label: "test.puller")
        logger.logLevel = .critical
        return ImagePuller(images: Self.images, registryBaseURL: url, caPEM: caPEM, logger: logger)
    }

    static func pullSecret(user: String, password: String, host: String = "blr.vultrcr.com") -> JSONValue {
        let config = JSONValue.object(["auths": .object([host: .object(["auth": .string(Data("\(user):\(password)".utf8).base64EncodedString())])])])
        return .object(["type": .string("kubernetes.io/dockerconfigjson"), "data": .object([".dockerconfigjson": .string(Data(config.jsonBytes()).base64EncodedString())])])
    }
}

@Suite(.timeLimit(.minutes(1))) struct RegistryTests {
    @Test func sha256KnownAnswers() {
        #expect(SHA256.digest(Array("abc".utf8)) == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.digest([]) == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.digest(Array(String(repeating: "a", count: 1000).utf8)) == "sha256:41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func vultrCredentialsGetATokenAndTheManifest() async throws {
        try await RegistryFixture.with { f in
            let ping = try await f.send("/v2/")
            #expect(ping.status == 401)
            #expect(ping.head.header("WWW-Authenticate") == "Bearer realm=\"\(f.url)/v2/token\",service=\"blr.vultrcr.com\"")
            #expect(ping.head.header("Docker-Distribution-API-Version") == "registry/2.0")

            let (user, password) = try await f.vultrCredentials()
            let token = try await f.token(user: user, password: password)
            #expect(token.status == 200)
            let doc = try JSONValue.parse(token.body)
            #expect(doc["token"]?.stringValue?.isEmpty == false && doc["token"] == doc["access_token"])
            #expect(doc["expires_in"] == .int(300))
            #expect(try await f.send("/v2/", headers: f.bearer(token)).status == 200)

            let manifest = try await f.send("/v2/kubetrace/kubetrace-operator/manifests/0.1.0", headers: f.bearer(token))
            #expect(manifest.status == 200)
            #expect(manifest.head.header("Content-Type") == "application/vnd.oci.image.manifest.v1+json")
            #expect(manifest.head.header("Docker-Content-Digest") == SHA256.digest(manifest.body))
            let m = try JSONValue.parse(manifest.body)
            #expect(m["schemaVersion"] == .int(2) && m["layers"]?.arrayValue?.count == 1)
            // By digest, and the config blob it names.
            let digest = SHA256.digest(manifest.body)
            #expect(try await f.send("/v2/kubetrace/kubetrace-operator/manifests/\(digest)", headers: f.bearer(token)).body == manifest.body)
            let configDigest = m["config"]?["digest"]?.stringValue ?? ""
            let config = try await f.send("/v2/kubetrace/kubetrace-operator/blobs/\(configDigest)", headers: f.bearer(token))
            #expect(config.status == 200 && SHA256.digest(config.body) == configDigest)
            #expect(try JSONValue.parse(config.body)["config"]?["User"] == .string("65532:65532"))

            // The Kubetrace API's `registry` block credentials are accepted too.
            f.cluster.kubetraceAPI.configure { $0.registryLifetime = 600 }
            let refresh = try await f.send("POST", "/kubetrace-api/v1/clusters/c-1/token:refresh", headers: [("Authorization", "Bearer \(f.cluster.operatorToken)")],
                                           body: Array(#"{"clusterId":"c-1"}"#.utf8))
            let reg = try JSONValue.parse(refresh.body)["registry"]
            let (u2, p2) = (reg?["username"]?.stringValue ?? "", reg?["password"]?.stringValue ?? "")
            #expect(try await f.token(user: u2, password: p2).status == 200)
            f.clock.advance(601)
            #expect(try await f.token(user: u2, password: p2).status == 401)
        }
    }

    @Test func wrongPasswordIsRefusedAsDistributionDoes() async throws {
        try await RegistryFixture.with { f in
            let (user, _) = try await f.vultrCredentials()
            let r = try await f.token(user: user, password: "not-the-password")
            #expect(r.status == 401)
            #expect(r.head.header("WWW-Authenticate") == "Basic realm=\"blr.vultrcr.com\"")
            let e = try JSONValue.parse(r.body)["errors"]?.arrayValue?.first
            #expect(e?["code"] == .string("UNAUTHORIZED"))
            #expect(e?["message"] == .string("authentication required"))
            #expect(e?["detail"] == .string("basic authentication challenge for realm \"blr.vultrcr.com\": authentication failure"))
            #expect(!String(decoding: r.body, as: UTF8.self).contains("not-the-password"))
            // The OAuth form POST containerd tries first: 401 as well.
            let form = "grant_type=password&service=blr.vultrcr.com&client_id=containerd-client&scope=repository%3Akubetrace%2Fkubetrace-operator%3Apull&username=\(user)&password=nope"
            let post = try await f.send("POST", "/v2/token", headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(form.utf8))
            #expect(post.status == 401)
            #expect(f.registry.tokenRequestsRefused == 2)
        }
    }

    @Test func anonymousPullOfThePrivateRegistryIsDenied() async throws {
        try await RegistryFixture.with { f in
            let none = try await f.send("/v2/kubetrace/kubetrace-operator/manifests/0.1.0")
            #expect(none.status == 401)
            #expect(none.head.header("WWW-Authenticate") == "Bearer realm=\"\(f.url)/v2/token\",service=\"blr.vultrcr.com\",scope=\"repository:kubetrace/kubetrace-operator:pull\"")
            let detail = try JSONValue.parse(none.body)["errors"]?.arrayValue?.first?["detail"]
            #expect(detail == .array([.object(["Type": .string("repository"), "Class": .string(""), "Name": .string("kubetrace/kubetrace-operator"), "Action": .string("pull")])]))

            let anonymous = try await f.token(user: nil, password: nil)
            #expect(anonymous.status == 200)
            let denied = try await f.send("/v2/kubetrace/kubetrace-operator/manifests/0.1.0", headers: f.bearer(anonymous))
            #expect(denied.status == 401)
            #expect(denied.head.header("WWW-Authenticate")?.hasSuffix(",error=\"insufficient_scope\"") == true)
            #expect(try JSONValue.parse(denied.body)["errors"]?.arrayValue?.first?["code"] == .string("UNAUTHORIZED"))
            // A public registry's image is pullable anonymously.
            let hub = try await f.token(user: nil, password: nil, scope: "repository:library/busybox:pull", service: "docker.io")
            #expect(try await f.send("/v2/library/busybox/manifests/latest?ns=docker.io", headers: f.bearer(hub)).status == 200)
            // A token for one registry is not valid at another.
            let other = try await f.send("/v2/kubetrace/kubetrace-operator/manifests/0.1.0", headers: f.bearer(hub))
            #expect(other.head.header("WWW-Authenticate")?.hasSuffix(",error=\"invalid_token\"") == true)
        }
    }

    @Test func expiredCredentialsAndTokensAreRefused() async throws {
        try await RegistryFixture.with { f in
            let (user, password) = try await f.vultrCredentials(expirySeconds: 60)
            // Issued at the real time (however long the start took on a loaded host): count from there.
            f.clock.catchUp()
            let token = try await f.token(user: user, password: password)
            #expect(token.status == 200)
            f.clock.advance(61)
            #expect(try await f.token(user: user, password: password).status == 401)
            // The token itself lives 5 min.
            #expect(try await f.send("/v2/kubetrace/kubetrace-operator/manifests/0.1.0", headers: f.bearer(token)).status == 200)
            f.clock.advance(300)
            let late = try await f.send("/v2/kubetrace/kubetrace-operator/manifests/0.1.0", headers: f.bearer(token))
            #expect(late.status == 401 && late.head.header("WWW-Authenticate")?.hasSuffix(",error=\"invalid_token\"") == true)
            // expiry_seconds=0: never expires (the Vultr API spec).
            let (u0, p0) = try await f.vultrCredentials(expirySeconds: 0)
            f.clock.advance(400 * 86_400)
            #expect(try await f.token(user: u0, password: p0).status == 200)
        }
    }

    @Test func unknownTagIsManifestUnknown() async throws {
        try await RegistryFixture.with { f in
            let (user, password) = try await f.vultrCredentials()
            let token = try await f.token(user: user, password: password)
            let r = try await f.send("/v2/kubetrace/kubetrace-operator/manifests/9.9.9", headers: f.bearer(token))
            #expect(r.status == 404)
            #expect(String(decoding: r.body, as: UTF8.self) == #"{"errors":[{"code":"MANIFEST_UNKNOWN","detail":{"Tag":"9.9.9"},"message":"manifest unknown"}]}"# + "\n")
        }
    }

    @Test func pullerWithTheVultrCredentialsGetsTheImage() async throws {
        try await RegistryFixture.with { f in
            let (user, password) = try await f.vultrCredentials()
            let puller = f.puller()
            // An unrelated Secret first: the keyring skips what does not match the image.
            let secrets = [RegistryFixture.pullSecret(user: "x", password: "y", host: "ewr.vultrcr.com"), RegistryFixture.pullSecret(user: user, password: password)]
            let image = try await puller.pull(RegistryFixture.operatorImage, pullSecrets: secrets, policy: "IfNotPresent")
            #expect(image == RegistryFixture.images[RegistryFixture.operatorImage])
            #expect(f.registry.manifestsServed == 1)
            // The legacy kubernetes.io/dockercfg format, with a scheme and a path prefix in the key.
            let cfg = JSONValue.object(["https://blr.vultrcr.com/kubetrace": .object(["username": .string(user), "password": .string(password)])])
            let legacy = JSONValue.object(["type": .string("kubernetes.io/dockercfg"), "data": .object([".dockercfg": .string(Data(cfg.jsonBytes()).base64EncodedString())])])
            #expect(try await f.puller().pull(RegistryFixture.operatorImage, pullSecrets: [legacy], policy: "Always") == image)
        }
    }

    @Test func pullerWithoutCredentialsFailsAsContainerdSays() async throws {
        try await RegistryFixture.with { f in
            let ref = RegistryFixture.operatorImage
            do throws(ImagePullError) {
                _ = try await f.puller().pull(ref, pullSecrets: [], policy: "IfNotPresent")
                Issue.record("pulled without credentials")
            } catch {
                #expect(error.reason == "ErrImagePull")
                #expect(error.message == "rpc error: code = Unknown desc = failed to pull and unpack image \"\(ref)\": failed to resolve reference \"\(ref)\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed")
            }
            // A wrong password: the token request's 401, the URL as containerd shows it, no secret.
            let (user, _) = try await f.vultrCredentials()
            do throws(ImagePullError) {
                _ = try await f.puller().pull(ref, pullSecrets: [RegistryFixture.pullSecret(user: user, password: "WRONG-pw-canary")], policy: "IfNotPresent")
                Issue.record("pulled with a wrong password")
            } catch {
                #expect(error.message == "rpc error: code = Unknown desc = failed to pull and unpack image \"\(ref)\": failed to resolve reference \"\(ref)\": failed to authorize: failed to fetch oauth token: unexpected status from GET request to \(f.url)/v2/token?scope=repository%3Akubetrace%2Fkubetrace-operator%3Apull&service=blr.vultrcr.com: 401 Unauthorized")
                #expect(!error.description.contains("WRONG-pw-canary"))
            }
            // Not in the registry.
            do throws(ImagePullError) {
                _ = try await f.puller().pull("blr.vultrcr.com/kubetrace/nope:1", pullSecrets: [], policy: "IfNotPresent")
            } catch {
                #expect(error.message.hasPrefix("rpc error: code = "))
            }
            let (u, p) = try await f.vultrCredentials()
            do throws(ImagePullError) {
                _ = try await f.puller().pull("blr.vultrcr.com/kubetrace/kubetrace-operator:9.9.9", pullSecrets: [RegistryFixture.pullSecret(user: u, password: p)], policy: "IfNotPresent")
                Issue.record("pulled an unknown tag")
            } catch {
                #expect(error.message == "rpc error: code = NotFound desc = failed to pull and unpack image \"blr.vultrcr.com/kubetrace/kubetrace-operator:9.9.9\": failed to resolve reference \"blr.vultrcr.com/kubetrace/kubetrace-operator:9.9.9\": blr.vultrcr.com/kubetrace/kubetrace-operator:9.9.9: not found")
            }
            // Never, and a reference that does not parse.
            await #expect(throws: ImagePullError.self) { _ = try await f.puller().pull(ref, pullSecrets: [], policy: "Never") }
            do throws(ImagePullError) { _ = try await f.puller().pull(ref, pullSecrets: [], policy: "Never") } catch {
                #expect(error.reason == "ErrImageNeverPull" && error.message == "Container image \"\(ref)\" is not present with pull policy of Never")
            }
            do throws(ImagePullError) { _ = try await f.puller().pull("Blr.Vultrcr.com/Kubetrace/X", pullSecrets: [], policy: "IfNotPresent") } catch {
                #expect(error.reason == "InvalidImageName")
            }
        }
    }

    @Test func ifNotPresentUsesThePulledImageAlwaysRechecksCredentials() async throws {
        try await RegistryFixture.with { f in
            let (user, password) = try await f.vultrCredentials()
            let puller = f.puller()
            let ref = RegistryFixture.operatorImage
            _ = try await puller.pull(ref, pullSecrets: [RegistryFixture.pullSecret(user: user, password: password)], policy: "IfNotPresent")
            let attempts = puller.pullAttempts
            #expect(try await puller.pull(ref, pullSecrets: [], policy: "IfNotPresent") == RegistryFixture.images[ref])
            #expect(try await puller.pull(ref, pullSecrets: [], policy: "Never") == RegistryFixture.images[ref])
            #expect(puller.pullAttempts == attempts)
            do throws(ImagePullError) {
                _ = try await puller.pull(ref, pullSecrets: [], policy: "Always")
                Issue.record("Always pulled without credentials")
            } catch {
                #expect(error.reason == "ErrImagePull" && error.message.contains("insufficient_scope"))
            }
            #expect(puller.pullAttempts == attempts + 1)
            // Several matching credentials: each is tried in order, the failures aggregated
            // (utilerrors.NewAggregate: the same message twice is reported once).
            do throws(ImagePullError) {
                _ = try await puller.pull(ref, pullSecrets: [RegistryFixture.pullSecret(user: user, password: "a"), RegistryFixture.pullSecret(user: "other", password: "b", host: "blr.vultrcr.com/kubetrace")], policy: "Always")
                Issue.record("pulled with wrong credentials")
            } catch {
                #expect(error.message.hasPrefix("rpc error: code = Unknown desc = failed to pull and unpack image"))
                #expect(error.message.hasSuffix("/v2/token?scope=repository%3Akubetrace%2Fkubetrace-operator%3Apull&service=blr.vultrcr.com: 401 Unauthorized"))
            }
            #expect(puller.pullAttempts == attempts + 3)
            #expect(try await puller.pull(ref, pullSecrets: [RegistryFixture.pullSecret(user: "bad", password: "a"), RegistryFixture.pullSecret(user: user, password: password)], policy: "Always") == RegistryFixture.images[ref])
        }
    }

    @Test func keyringMatchesAsTheKubeletDoes() {
        func keyring(_ keys: [String]) -> DockerKeyring {
            DockerKeyring(pullSecrets: keys.enumerated().map { RegistryFixture.pullSecret(user: "u\($0.offset)", password: "p", host: $0.element) })
        }
        let k = keyring(["blr.vultrcr.com", "blr.vultrcr.com/kubetrace", "*.vultrcr.com", "127.0.0.1:5000", "https://index.docker.io/v1/"])
        #expect(k.lookup("blr.vultrcr.com/kubetrace/kubetrace-operator").map(\.username) == ["u1", "u0", "u2"])
        #expect(k.lookup("ewr.vultrcr.com/other/x").map(\.username) == ["u2"])
        #expect(k.lookup("a.b.vultrcr.com/x").isEmpty)
        #expect(k.lookup("127.0.0.1:5000/x").map(\.username) == ["u3"])
        #expect(k.lookup("127.0.0.1/x").isEmpty)
        #expect(k.lookup("docker.io/library/busybox").map(\.username) == ["u4"])
    }

    @Test func imageReferencesNormalizeAsDistributionDoes() throws {
        #expect(try ImageReference.parse("busybox").canonical == "docker.io/library/busybox:latest")
        #expect(try ImageReference.parse("blr.vultrcr.com/kubetrace/op:0.1.0").canonical == "blr.vultrcr.com/kubetrace/op:0.1.0")
        #expect(try ImageReference.parse("localhost:5000/a/b").domain == "localhost:5000")
        #expect(throws: ImageReference.ParseError.self) { try ImageReference.parse("a b") }
        #expect(throws: ImageReference.ParseError.self) { try ImageReference.parse("blr.vultrcr.com/Kubetrace/op") }
    }

    /// A standard client agrees: curl does the ping, the token and the manifest by hand.
    @Test func curlPullsByHand() async throws {
        try await RegistryFixture.with { f in
            let dir = TempDir()
            let ca = dir.write("ca.crt", f.caPEM)
            let (user, password) = try await f.vultrCredentials()
            let ping = try await run("curl", ["-sS", "--cacert", ca, "-o", "/dev/null", "-D", "-", "\(f.url)/v2/"])
            #expect(ping.status == 0, "\(ping.stderr)")
            #expect(ping.stdout.contains("HTTP/2 401") || ping.stdout.contains("HTTP/1.1 401"))
            let challenge = ping.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("www-authenticate:") }.map(String.init) ?? ""
            #expect(challenge.contains("realm=\"\(f.url)/v2/token\""))
            // Credentials and the token go through curl's config on stdin, never argv.
            let tokenRun = try await run("curl", ["-sS", "--fail", "--cacert", ca, "-K", "-", "\(f.url)/v2/token?service=blr.vultrcr.com&scope=repository:kubetrace/kubetrace-operator:pull"],
                                         stdin: "user = \"\(user):\(password)\"\n")
            #expect(tokenRun.status == 0, "\(tokenRun.stderr)")
            let token = try JSONValue.parse(Array(tokenRun.stdout.utf8))["token"]?.stringValue ?? ""
            #expect(!token.isEmpty)
            let manifest = try await run("curl", ["-sS", "--fail", "--cacert", ca, "-K", "-", "-D", "\(dir.path)/headers",
                                                  "-H", "Accept: application/vnd.oci.image.manifest.v1+json", "\(f.url)/v2/kubetrace/kubetrace-operator/manifests/0.1.0"],
                                         stdin: "header = \"Authorization: Bearer \(token)\"\n")
            #expect(manifest.status == 0, "\(manifest.stderr)")
            let headers = try String(contentsOfFile: "\(dir.path)/headers", encoding: .utf8).lowercased()
            let digest = SHA256.digest(Array(manifest.stdout.utf8))
            #expect(headers.contains("docker-content-digest: \(digest)"))
            // HEAD (how containerd resolves): the same headers, Content-Length of the manifest, no body.
            let head = try await run("curl", ["-sS", "--fail", "-I", "--cacert", ca, "-K", "-", "\(f.url)/v2/kubetrace/kubetrace-operator/manifests/0.1.0"],
                                     stdin: "header = \"Authorization: Bearer \(token)\"\n")
            #expect(head.status == 0, "\(head.stderr)")
            #expect(head.stdout.lowercased().contains("docker-content-digest: \(digest)"))
            #expect(head.stdout.lowercased().contains("content-length: \(manifest.stdout.utf8.count)"))
            #expect(try JSONValue.parse(Array(manifest.stdout.utf8))["mediaType"] == .string("application/vnd.oci.image.manifest.v1+json"))
            // And curl with a wrong password gets the 401.
            let bad = try await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, "-K", "-", "\(f.url)/v2/token?service=blr.vultrcr.com&scope=repository:kubetrace/kubetrace-operator:pull"],
                                    stdin: "user = \"\(user):wrong\"\n")
            #expect(bad.stdout == "401")
        }
    }
}

/// The Kubetrace API emulator's operator-token rotation: the old token is honoured for the
/// grace period, then refused like an unknown one.
@Suite(.timeLimit(.minutes(1))) struct OperatorTokenRotationTests {
    @Test func rotatedTokenIsRevokedAfterTheGrace() async throws {
        try await RegistryFixture.with { f in
            let api = f.cluster.kubetraceAPI
            api.configure {
                $0.rotateOperatorToken = true
                $0.rotationGrace = 30
            }
            func refresh(_ token: String) async throws -> HTTPResponse {
                try await f.send("POST", "/kubetrace-api/v1/clusters/c-1/token:refresh", headers: [("Authorization", "Bearer \(token)")], body: Array(#"{"clusterId":"c-1"}"#.utf8))
            }
            func ping(_ token: String) async throws -> Int { try await f.send("/kubetrace-api/v1/ping", headers: [("Authorization", "Bearer \(token)")]).status }
            let old = f.cluster.operatorToken
            let first = try await refresh(old)
            #expect(first.status == 200)
            let next = try JSONValue.parse(first.body)["operatorToken"]?.stringValue ?? ""
            #expect(!next.isEmpty && next != old)
            // Within the grace both work (a retried refresh with the old token rotates nothing more).
            #expect(try await ping(old) == 200)
            #expect(try await ping(next) == 200)
            #expect(api.retiringCount == 1 && api.revokedCount == 0)
            f.clock.advance(30)
            let refused = try await refresh(old)
            #expect(refused.status == 401)
            #expect(String(decoding: refused.body, as: UTF8.self) == #"{"error":"invalid_token","message":"operator token is not valid"}"#)
            #expect(try await ping(old) == 401)
            #expect(api.revokedCount == 1 && !api.acceptsOperatorToken(old))
            #expect(try await ping(next) == 200)
            // rotationGrace 0: the replaced token is refused at once.
            api.configure { $0.rotationGrace = 0 }
            let second = try JSONValue.parse(try await refresh(next).body)["operatorToken"]?.stringValue ?? ""
            #expect(try await ping(next) == 401)
            #expect(try await ping(second) == 200)
            #expect(api.revokedCount == 2)
        }
    }
}
