import Foundation
import KubeClient

/// Reads the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`)
/// that kubectl's typed commands send (`create secret`, `create serviceaccount`,
/// `auth can-i`, `create token`, …) and turns it into the same JSON a JSON
/// client would have sent. Only the kinds kubectl creates here are described;
/// unknown fields are skipped, as protobuf decoders do.
enum KubeProtobuf {
    /// `k8s\0` magic, then a `runtime.Unknown` envelope.
    static let magic: [UInt8] = [0x6b, 0x38, 0x73, 0x00]

    indirect enum FieldType {
        case string, bytes, bool, int, time
        case message(String)
        case repeatedString
        case repeatedMessage(String)
        case mapStringString
        case mapStringBytes
    }

    typealias Schema = [Int: (name: String, type: FieldType)]

    static let schemas: [String: Schema] = [
        "ObjectMeta": [1: ("name", .string), 2: ("generateName", .string), 3: ("namespace", .string), 5: ("uid", .string),
                       6: ("resourceVersion", .string), 7: ("generation", .int), 8: ("creationTimestamp", .time),
                       11: ("labels", .mapStringString), 12: ("annotations", .mapStringString),
                       13: ("ownerReferences", .repeatedMessage("OwnerReference")), 14: ("finalizers", .repeatedString)],
        "OwnerReference": [1: ("kind", .string), 3: ("name", .string), 4: ("uid", .string), 5: ("apiVersion", .string),
                           6: ("controller", .bool), 7: ("blockOwnerDeletion", .bool)],
        "Secret": [1: ("metadata", .message("ObjectMeta")), 2: ("data", .mapStringBytes), 3: ("type", .string),
                   4: ("stringData", .mapStringString), 5: ("immutable", .bool)],
        "ConfigMap": [1: ("metadata", .message("ObjectMeta")), 2: ("data", .mapStringString), 3: ("binaryData", .mapStringBytes), 4: ("immutable", .bool)],
        "ServiceAccount": [1: ("metadata", .message("ObjectMeta")), 2: ("secrets", .repeatedMessage("ObjectReference")),
                           3: ("imagePullSecrets", .repeatedMessage("LocalObjectReference")), 4: ("automountServiceAccountToken", .bool)],
        "ObjectReference": [1: ("kind", .string), 2: ("namespace", .string), 3: ("name", .string), 4: ("uid", .string),
                            5: ("apiVersion", .string), 6: ("resourceVersion", .string), 7: ("fieldPath", .string)],
        "LocalObjectReference": [1: ("name", .string)],
        "Namespace": [1: ("metadata", .message("ObjectMeta")), 2: ("spec", .message("NamespaceSpec"))],
        "NamespaceSpec": [1: ("finalizers", .repeatedString)],
        "Role": [1: ("metadata", .message("ObjectMeta")), 2: ("rules", .repeatedMessage("PolicyRule"))],
        "ClusterRole": [1: ("metadata", .message("ObjectMeta")), 2: ("rules", .repeatedMessage("PolicyRule"))],
        "PolicyRule": [1: ("verbs", .repeatedString), 2: ("apiGroups", .repeatedString), 3: ("resources", .repeatedString),
                       4: ("resourceNames", .repeatedString), 5: ("nonResourceURLs", .repeatedString)],
        "RoleBinding": [1: ("metadata", .message("ObjectMeta")), 2: ("subjects", .repeatedMessage("Subject")), 3: ("roleRef", .message("RoleRef"))],
        "ClusterRoleBinding": [1: ("metadata", .message("ObjectMeta")), 2: ("subjects", .repeatedMessage("Subject")), 3: ("roleRef", .message("RoleRef"))],
        "Subject": [1: ("kind", .string), 2: ("apiGroup", .string), 3: ("name", .string), 4: ("namespace", .string)],
        "RoleRef": [1: ("apiGroup", .string), 2: ("kind", .string), 3: ("name", .string)],
        "SelfSubjectAccessReview": [1: ("metadata", .message("ObjectMeta")), 2: ("spec", .message("SelfSubjectAccessReviewSpec"))],
        "SelfSubjectAccessReviewSpec": [1: ("resourceAttributes", .message("ResourceAttributes")), 2: ("nonResourceAttributes", .message("NonResourceAttributes"))],
        "ResourceAttributes": [1: ("namespace", .string), 2: ("verb", .string), 3: ("group", .string), 4: ("version", .string),
                               5: ("resource", .string), 6: ("subresource", .string), 7: ("name", .string)],
        "NonResourceAttributes": [1: ("path", .string), 2: ("verb", .string)],
        "TokenRequest": [1: ("metadata", .message("ObjectMeta")), 2: ("spec", .message("TokenRequestSpec"))],
        "TokenRequestSpec": [1: ("audiences", .repeatedString), 3: ("boundObjectRef", .message("BoundObjectReference")), 4: ("expirationSeconds", .int)],
        "BoundObjectReference": [1: ("kind", .string), 2: ("apiVersion", .string), 3: ("name", .string), 4: ("uid", .string)],
        "Lease": [1: ("metadata", .message("ObjectMeta")), 2: ("spec", .message("LeaseSpec"))],
        "LeaseSpec": [1: ("holderIdentity", .string), 2: ("leaseDurationSeconds", .int), 3: ("acquireTime", .time),
                      4: ("renewTime", .time), 5: ("leaseTransitions", .int)],
        "Time": [:],
    ]

    struct DecodeError: Error { var reason: String }

    /// Decodes a protobuf request body into JSON.
    static func decode(_ bytes: [UInt8]) throws(APIError) -> JSONValue {
        guard bytes.count >= 4, Array(bytes.prefix(4)) == magic else {
            throw APIError.badRequest("the body of the request was not valid protobuf: missing k8s magic prefix")
        }
        do {
            var r = Reader(bytes: bytes[4...])
            var apiVersion = ""
            var kind = ""
            var raw: ArraySlice<UInt8> = []
            while let (field, wire) = try r.tag() {
                switch (field, wire) {
                case (1, 2):
                    var tm = Reader(bytes: try r.lengthDelimited())
                    while let (f, w) = try tm.tag() {
                        if f == 1, w == 2 { apiVersion = String(decoding: try tm.lengthDelimited(), as: UTF8.self) }
                        else if f == 2, w == 2 { kind = String(decoding: try tm.lengthDelimited(), as: UTF8.self) }
                        else { try tm.skip(w) }
                    }
                case (2, 2): raw = try r.lengthDelimited()
                default: try r.skip(wire)
                }
            }
            guard let schema = schemas[kind] else {
                throw APIError(415, "UnsupportedMediaType", "the devcluster cannot decode \(kind) from protobuf; send it as application/json")
            }
            var obj = try message(raw, schema: schema)
            obj["apiVersion"] = .string(apiVersion)
            obj["kind"] = .string(kind)
            return .object(obj)
        } catch let e as APIError {
            throw e
        } catch {
            throw APIError.badRequest("the body of the request was not valid protobuf: \((error as? DecodeError)?.reason ?? "\(error)")")
        }
    }

    private static func message(_ bytes: ArraySlice<UInt8>, schema: Schema) throws -> [String: JSONValue] {
        var r = Reader(bytes: bytes)
        var out: [String: JSONValue] = [:]
        while let (field, wire) = try r.tag() {
            guard let (name, type) = schema[field] else { try r.skip(wire); continue }
            switch type {
            // Kubernetes' proto2 encoding writes empty strings and zero numbers that JSON omits.
            case .string:
                let v = String(decoding: try r.lengthDelimited(), as: UTF8.self)
                if !v.isEmpty { out[name] = .string(v) }
            case .bytes: out[name] = .string(Data(try r.lengthDelimited()).base64EncodedString())
            case .bool: out[name] = .bool(try r.varint() != 0)
            case .int:
                let v = Int(truncatingIfNeeded: try r.varint())
                if v != 0 { out[name] = .int(v) }
            case .time:
                var t = Reader(bytes: try r.lengthDelimited())
                var seconds: UInt64 = 0
                while let (f, w) = try t.tag() { if f == 1 { seconds = try t.varint() } else { try t.skip(w) } }
                if seconds != 0 { out[name] = .string(RFC3339.format(Date(timeIntervalSince1970: TimeInterval(Int64(bitPattern: seconds))))) }
            case .message(let m):
                out[name] = .object(try message(try r.lengthDelimited(), schema: schemas[m] ?? [:]))
            case .repeatedString:
                var list = out[name]?.arrayValue ?? []
                list.append(.string(String(decoding: try r.lengthDelimited(), as: UTF8.self)))
                out[name] = .array(list)
            case .repeatedMessage(let m):
                var list = out[name]?.arrayValue ?? []
                list.append(.object(try message(try r.lengthDelimited(), schema: schemas[m] ?? [:])))
                out[name] = .array(list)
            case .mapStringString, .mapStringBytes:
                var entry = Reader(bytes: try r.lengthDelimited())
                var key = ""
                var value: JSONValue = .string("")
                while let (f, w) = try entry.tag() {
                    if f == 1 { key = String(decoding: try entry.lengthDelimited(), as: UTF8.self) }
                    else if f == 2 {
                        let v = try entry.lengthDelimited()
                        if case .mapStringBytes = type { value = .string(Data(v).base64EncodedString()) }
                        else { value = .string(String(decoding: v, as: UTF8.self)) }
                    } else { try entry.skip(w) }
                }
                var map = out[name]?.objectValue ?? [:]
                map[key] = value
                out[name] = .object(map)
            }
        }
        return out
    }

    /// The protobuf wire format, bounds-checked everywhere.
    struct Reader {
        var bytes: ArraySlice<UInt8>

        mutating func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while let b = bytes.first {
                bytes = bytes.dropFirst()
                result |= UInt64(b & 0x7f) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { throw DecodeError(reason: "varint too long") }
            }
            throw DecodeError(reason: "truncated varint")
        }

        mutating func tag() throws -> (Int, Int)? {
            if bytes.isEmpty { return nil }
            let t = try varint()
            return (Int(t >> 3), Int(t & 7))
        }

        mutating func lengthDelimited() throws -> ArraySlice<UInt8> {
            let n = try varint()
            guard n <= UInt64(bytes.count) else { throw DecodeError(reason: "length \(n) past the end of the message") }
            let out = bytes.prefix(Int(n))
            bytes = bytes.dropFirst(Int(n))
            return out
        }

        mutating func skip(_ wire: Int) throws {
            switch wire {
            case 0: _ = try varint()
            case 1: guard bytes.count >= 8 else { throw DecodeError(reason: "truncated fixed64") }; bytes = bytes.dropFirst(8)
            case 2: _ = try lengthDelimited()
            case 5: guard bytes.count >= 4 else { throw DecodeError(reason: "truncated fixed32") }; bytes = bytes.dropFirst(4)
            default: throw DecodeError(reason: "unsupported wire type \(wire)")
            }
        }
    }
}
