import KubetraceTestKit
import Foundation
@testable import KubeClient
import Testing

@Suite struct RequestBuildingTests {
    @Test func paths() {
        #expect(Secret.resource.path(namespace: "ns", name: "s") == "/api/v1/namespaces/ns/secrets/s")
        #expect(Secret.resource.path() == "/api/v1/secrets")
        #expect(Role.resource.path(namespace: "ns") == "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles")
        #expect(ClusterRole.resource.path(namespace: "ignored", name: "system:auth-delegator") == "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:auth-delegator")
        #expect(ServiceAccount.resource.path(namespace: "ns", name: "sa", subresource: "token") == "/api/v1/namespaces/ns/serviceaccounts/sa/token")
        #expect(Namespace.resource.path(name: "kube-system") == "/api/v1/namespaces/kube-system")
        #expect(Lease.resource.path(namespace: "ns", name: "l") == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l")
        // A name with characters that are not path-safe is escaped, never spliced.
        #expect(Secret.resource.path(namespace: "ns", name: "a/b?c") == "/api/v1/namespaces/ns/secrets/a%2Fb%3Fc")
    }

    @Test func queryEncodingKeepsSelectorsIntact() {
        var o = ListOptions(labelSelector: "app in (web,api),tier!=db", fieldSelector: "metadata.name=x", limit: 500, continue: "abc+/=")
        o.resourceVersion = "10245"
        o.allowWatchBookmarks = true
        o.timeoutSeconds = 300
        let q = encodeQuery(o.queryItems(watch: true))
        #expect(q == "watch=1&labelSelector=app%20in%20%28web%2Capi%29%2Ctier%21%3Ddb&fieldSelector=metadata.name%3Dx&limit=500&continue=abc%2B%2F%3D&resourceVersion=10245&timeoutSeconds=300&allowWatchBookmarks=true")
        #expect(encodeQuery(ListOptions().queryItems()) == "")
    }

    @Test func jsonPatchEncoding() {
        let patch = KubeClient.Patch.json([.test("/metadata/resourceVersion", .string("4711")), .add("/imagePullSecrets/-", .object(["name": .string("kubetrace-registry")]))])
        #expect(String(decoding: patch.body, as: UTF8.self) == #"[{"op":"test","path":"/metadata/resourceVersion","value":"4711"},{"op":"add","path":"/imagePullSecrets/-","value":{"name":"kubetrace-registry"}}]"#)
        #expect(patch.contentType == "application/json-patch+json")
    }
}

@Suite struct StatusDecodingTests {
    func head(_ status: Int, _ headers: [(String, String)] = []) -> HTTPResponseHead {
        HTTPResponseHead(status: status, headers: headers.map { (name: $0.0, value: $0.1) })
    }

    @Test func decodesStatusBodies() {
        let body = #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on secrets \"x\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"x","kind":"secrets"},"code":409}"#
        let e = KubeClientError.api(method: "PUT", path: "/api/v1/namespaces/ns/secrets/x", head: head(409), body: Array(body.utf8))
        #expect(e.isConflict)
        #expect(!e.isAlreadyExists)
        #expect(e.status?.details?.name == "x")
        #expect(e.message.hasPrefix("PUT /api/v1/namespaces/ns/secrets/x: 409 Conflict: Operation cannot be fulfilled"))
        #expect(e.message.hasSuffix("(the object changed since it was read: re-read it and retry)"))
    }

    @Test func forbiddenSaysWhatRBACDenied() {
        let body = #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"secrets \"x\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot get resource \"secrets\" in API group \"\" in the namespace \"ns\"","reason":"Forbidden","code":403}"#
        let e = KubeClientError.api(method: "GET", path: "/api/v1/namespaces/ns/secrets/x", head: head(403), body: Array(body.utf8))
        #expect(e.isForbidden)
        #expect(e.message.contains(#"cannot get resource "secrets" in API group "" in the namespace "ns""#))
        #expect(e.message.contains("grant that verb on that resource"))
    }

    @Test func plainText429WithRetryAfter() {
        let e = KubeClientError.api(method: "GET", path: "/api/v1/pods", head: head(429, [("Retry-After", "1")]),
                                    body: Array("Too many requests, please try again later.\n".utf8))
        #expect(e.isTooManyRequests)
        #expect(e.isRetryable)
        #expect(e.retryAfter == .seconds(1))
        #expect(e.status == nil)
        #expect(e.message == "GET /api/v1/pods: 429: Too many requests, please try again later. (the API server is throttling: retry after the given delay)")
    }

    @Test func expiredAndGone() {
        for reason in ["Expired", "Gone"] {
            let body = #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (2)","reason":"\#(reason)","code":410}"#
            #expect(KubeClientError.api(method: "GET", path: "/p", head: head(410), body: Array(body.utf8)).isExpired)
        }
        let retry = #"{"kind":"Status","status":"Failure","message":"slow down","reason":"TooManyRequests","details":{"retryAfterSeconds":7},"code":429}"#
        #expect(KubeClientError.api(method: "GET", path: "/p", head: head(429), body: Array(retry.utf8)).retryAfter == .seconds(7))
    }

    @Test func emptyBodyStillSaysTheStatus() {
        let e = KubeClientError.api(method: "GET", path: "/p", head: head(503), body: [])
        #expect(e.message == "GET /p: 503: HTTP 503")
        #expect(e.isRetryable)
    }
}

@Suite struct JWTTests {
    @Test func readsExp() {
        func seg(_ s: String) -> String {
            Data(s.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "").replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        }
        let token = "\(seg(#"{"alg":"none"}"#)).\(seg(#"{"exp":1731613413,"sub":"x"}"#)).sig"
        #expect(JWT.expiry(of: token) == Date(timeIntervalSince1970: 1_731_613_413))
        #expect(JWT.expiry(of: "not-a-jwt") == nil)
        #expect(JWT.expiry(of: "a.!!!.c") == nil)
        #expect(JWT.expiry(of: "\(seg("{}")).\(seg(#"{"sub":"x"}"#)).s") == nil)
    }
}

/// `metav1.MicroTime` on the wire: kube-apiserver's layout wants exactly six fractional digits.
@Suite struct MicroTimeTests {
    @Test func microTimesHaveSixFractionalDigitsAndReadBack() {
        let d = Date(timeIntervalSince1970: 1_796_000_000.123456)
        let text = RFC3339.formatMicro(d)
        #expect(text == "2026-11-30T00:53:20.123456Z")
        #expect(RFC3339.isMicroTime(text))
        #expect(!RFC3339.isMicroTime(RFC3339.format(d, fractional: true)), "milliseconds are refused by the server")
        #expect(abs((RFC3339.parse(text)?.timeIntervalSince1970 ?? 0) - d.timeIntervalSince1970) < 0.001)
        #expect(RFC3339.formatMicro(Date(timeIntervalSince1970: 1_796_000_000)) == "2026-11-30T00:53:20.000000Z")
    }
}
