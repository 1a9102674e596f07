import Foundation
import KubeClient
import Logging
import Synchronization

/// Why an image could not be had, as the kubelet reports it in `state.waiting`.
public struct ImagePullError: Error, Sendable, CustomStringConvertible {
    /// `ErrImagePull`, `InvalidImageName` or `ErrImageNeverPull` (pkg/kubelet/images/types.go).
    public var reason: String
    /// The waiting message: for `ErrImagePull` the runtime's error text as the kubelet gets it
    /// over CRI (`rpc error: code = … desc = failed to pull and unpack image …`, image_manager.go
    /// `evalCRIPullErr` passes it through); never a credential.
    public var message: String
    public var description: String { "\(reason): \(message)" }

    init(_ reason: String, _ message: String) {
        self.reason = reason
        self.message = message
    }
}

/// The node's image service: pulls an image reference from the registry emulator over real
/// HTTP(S) on loopback, as containerd's resolver would, with the credentials of the Pod's pull
/// Secrets, and remembers what it pulled.
///
/// Flow (containerd remotes/docker: resolver.go, authorizer.go, auth/fetch.go): ping `/v2/`,
/// read the `WWW-Authenticate` challenge, fetch a bearer token from its realm for
/// `repository:NAME:pull` (Basic auth with the credentials; anonymous without), then the
/// manifest. Every request names the image's registry host with `ns=` (containerd's mirror
/// parameter), since one listener stands for several registries.
///
/// Credentials (kubelet kuberuntime_image.go `PullImage`): when the keyring has matches, each is
/// tried in order and the first success wins; all failing gives the aggregated errors. Only when
/// nothing matches is the pull anonymous: the kubelet does not fall back to anonymous after
/// matching credentials fail.
final class ImagePuller: Sendable {
    private let imagesByReference: [String: NodeImage]
    private let registryBaseURL: String
    private let tls: TLSSettings
    private let logger: Logger
    /// Images pulled on this node, by canonical reference.
    private let present = Mutex<[String: NodeImage]>([:])
    private let pulls = Mutex<Int>(0)

    init(images: [String: NodeImage], registryBaseURL: String, caPEM: String?, logger: Logger) {
        var byRef: [String: NodeImage] = [:]
        for (raw, image) in images {
            if let ref = try? ImageReference.parse(raw) { byRef[ref.canonical] = image }
        }
        imagesByReference = byRef
        self.registryBaseURL = registryBaseURL.hasSuffix("/") ? String(registryBaseURL.dropLast()) : registryBaseURL
        tls = TLSSettings(certificateAuthorityPEM: caPEM)
        self.logger = logger
    }

    /// Registry round trips made (each a full ping/token/manifest attempt), for tests.
    var pullAttempts: Int { pulls.withLock { $0 } }

    /// Whether `reference` has been pulled on this node.
    func isPresent(_ reference: String) -> Bool {
        guard let ref = try? ImageReference.parse(reference) else { return false }
        return present.withLock { $0[ref.canonical] != nil }
    }

    /// - Parameters:
    ///   - pullSecrets: the Secret objects named by the Pod's `spec.imagePullSecrets`, in order
    ///     (`kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`).
    ///   - policy: `Always`, `IfNotPresent` or `Never` (image_manager.go `shouldPullImage`:
    ///     `IfNotPresent` and `Never` use an image already on the node; `Always` contacts the
    ///     registry every time and so re-checks the credentials).
    func pull(_ reference: String, pullSecrets: [JSONValue], policy: String) async throws(ImagePullError) -> NodeImage {
        let ref: ImageReference
        do { ref = try ImageReference.parse(reference) } catch {
            // image_manager.go `EnsureImageExists` → applyDefaultImageTag → parsers.ParseImageName.
            throw ImagePullError("InvalidImageName", "Failed to apply default image tag \"\(reference)\": couldn't parse image name \"\(reference)\": \(error.reason)")
        }
        let effective = policy.isEmpty ? (ref.tag == "latest" && ref.digest == nil ? "Always" : "IfNotPresent") : policy
        if effective != "Always", let image = present.withLock({ $0[ref.canonical] }) {
            logger.debug("image already present", metadata: ["image": "\(reference)", "policy": "\(effective)"])
            return image
        }
        if effective == "Never" {
            throw ImagePullError("ErrImageNeverPull", "Container image \"\(reference)\" is not present with pull policy of Never")
        }
        let repository = "\(ref.domain)/\(ref.path)"
        let credentials = DockerKeyring(pullSecrets: pullSecrets).lookup(repository)
        logger.debug("pulling image", metadata: ["image": "\(reference)", "policy": "\(effective)", "matching-credentials": "\(credentials.count)"])
        var errors: [String] = []
        for credential in credentials.isEmpty ? [nil] : credentials.map(Optional.some) {
            var failure: PullFailure
            do {
                try await resolve(ref, credential: credential)
                if let image = imagesByReference[ref.canonical] {
                    present.withLock { $0[ref.canonical] = image }
                    logger.debug("pulled image", metadata: ["image": "\(reference)"])
                    return image
                }
                failure = PullFailure(notFound: true, text: "\(ref.canonical): not found")
            } catch {
                failure = error
            }
            // Each attempt is one CRI PullImage call failing with its own gRPC status
            // (containerd pkg/cri/server/images/image_pull.go wraps the resolver's error).
            errors.append("rpc error: code = \(failure.notFound ? "NotFound" : "Unknown") desc = failed to pull and unpack image \"\(ref.canonical)\": failed to resolve reference \"\(ref.canonical)\": \(failure.text)")
        }
        // kuberuntime_image.go returns utilerrors.NewAggregate(pullErrs): one error as itself,
        // several as "[a, b]", the same message only once.
        var seen: Set<String> = []
        let distinct = errors.filter { seen.insert($0).inserted }
        let message = distinct.count == 1 ? distinct[0] : "[\(distinct.joined(separator: ", "))]"
        logger.debug("image pull failed", metadata: ["image": "\(reference)", "error": "\(message)"])
        throw ImagePullError("ErrImagePull", message)
    }

    /// One resolver error, worded as containerd's (the part after "failed to resolve reference").
    private struct PullFailure: Error {
        var notFound = false
        var text: String
    }

    /// The ping, token and manifest requests of one attempt; throws the containerd wording.
    private func resolve(_ ref: ImageReference, credential: DockerKeyring.Credential?) async throws(PullFailure) {
        pulls.withLock { $0 += 1 }
        let ns = encodeQuery([("ns", ref.domain)])
        let manifestURL = "\(registryBaseURL)/v2/\(ref.path)/manifests/\(ref.reference)?\(ns)"
        let ping = try await send("GET", "\(registryBaseURL)/v2/?\(ns)", failing: manifestURL)
        var authorization: String?
        if ping.status == 401 {
            let challenge = AuthChallenge(header: ping.head.header("WWW-Authenticate") ?? "")
            if challenge.scheme == "basic" {
                guard let credential else { throw PullFailure(text: "failed to authorize: failed to handle basic auth because missing username or secret") }
                authorization = "Basic " + Data("\(credential.username):\(credential.password)".utf8).base64EncodedString()
            } else if let realm = challenge.parameters["realm"] {
                // Go's url.Values.Encode order (scope, then service), as containerd's token request.
                let query = encodeQuery([("scope", "repository:\(ref.path):pull")] + (challenge.parameters["service"].map { [("service", $0)] } ?? []))
                let tokenURL = "\(realm)\(realm.contains("?") ? "&" : "?")\(query)"
                var headers: [(name: String, value: String)] = []
                if let credential { headers.append(("Authorization", "Basic " + Data("\(credential.username):\(credential.password)".utf8).base64EncodedString())) }
                let kind = credential == nil ? "anonymous" : "oauth"
                let response = try await send("GET", tokenURL, headers: headers, failing: tokenURL)
                guard (200..<400).contains(response.status) else {
                    throw PullFailure(text: "failed to authorize: failed to fetch \(kind) token: unexpected status from GET request to \(tokenURL): \(Self.statusLine(response.status))")
                }
                let body = try? JSONValue.parse(response.body)
                guard let token = (body?["access_token"]?.stringValue).flatMap({ $0.isEmpty ? nil : $0 }) ?? body?["token"]?.stringValue, !token.isEmpty else {
                    throw PullFailure(text: "failed to authorize: failed to fetch \(kind) token: authorization server did not include a token in the response")
                }
                authorization = "Bearer \(token)"
            }
        }
        var headers: [(name: String, value: String)] = [("Accept", "\(RegistryEmulator.manifestMediaType), application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json")]
        if let authorization { headers.append(("Authorization", authorization)) }
        let manifest = try await send("GET", manifestURL, headers: headers, failing: manifestURL)
        switch manifest.status {
        case 200:
            if let digest = manifest.head.header("Docker-Content-Digest"), digest != SHA256.digest(manifest.body) {
                throw PullFailure(text: "failed to verify digest of manifest: \(digest) does not match the content")
            }
        case 404:
            throw PullFailure(notFound: true, text: "\(ref.canonical): not found")
        case 401:
            // authorizer.go `invalidAuthorization`: a challenge with an error after a token was sent.
            if authorization?.hasPrefix("Bearer ") == true, let error = AuthChallenge(header: manifest.head.header("WWW-Authenticate") ?? "").parameters["error"] {
                throw PullFailure(text: "pull access denied, repository does not exist or may require authorization: server message: \(error): authorization failed")
            }
            throw PullFailure(text: "unexpected status from GET request to \(manifestURL): \(Self.statusLine(401))")
        default:
            throw PullFailure(text: "unexpected status from GET request to \(manifestURL): \(Self.statusLine(manifest.status))")
        }
    }

    private func send(_ method: String, _ url: String, headers: [(name: String, value: String)] = [], failing shownURL: String) async throws(PullFailure) -> HTTPResponse {
        do {
            return try await CurlTransport.shared.send(HTTPRequest(method: method, url: url, headers: headers + [("User-Agent", "containerd/kubetrace-devcluster")], timeout: .seconds(30)), tls: tls, maxBodyBytes: 4 << 20)
        } catch {
            throw PullFailure(text: "failed to do request: \(method == "GET" ? "Get" : method) \"\(shownURL)\": \(error)")
        }
    }

    /// Go's `resp.Status`: "401 Unauthorized".
    static func statusLine(_ code: Int) -> String {
        let text = [400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"][code]
        return text.map { "\(code) \($0)" } ?? "\(code)"
    }
}
