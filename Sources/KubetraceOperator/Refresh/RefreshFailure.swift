/// Why a refresh, or a step the refreshers depend on (reading a token, minting registry
/// credentials, adopting the operator's own token), failed. Decisions use `kind`, never the
/// message: the message is for a person, and it never holds a secret.
public struct RefreshFailure: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as far as the next step cares. Compared, not switched over: more
    /// kinds may come.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let code: String
        private init(_ code: String) { self.code = code }
        public var description: String { code }

        /// The far side refused the credential it was sent (401, 403): a person must replace it.
        public static let rejected = Kind("rejected")
        /// There is no credential that can be sent: none configured, unreadable, empty, not one
        /// header line, or expired. A person must supply one.
        public static let unusableCredential = Kind("unusableCredential")
        /// Transient: unreachable, 429, 5xx, a read that failed. Trying again later can help.
        public static let retryable = Kind("retryable")
        /// The far side answered, but not with what was asked for.
        public static let badAnswer = Kind("badAnswer")
        /// A file this host keeps (the state directory's token) cannot be written.
        public static let localStorage = Kind("localStorage")
    }

    public var kind: Kind
    public var message: String
    /// The far side's `Retry-After`, in seconds.
    public var retryAfter: Double?
    /// A setting the user made (a flag, an environment variable, a file they named) is at fault.
    /// A command that stops with this error exits 2 (bad usage or configuration), otherwise 1.
    public var isConfiguration: Bool

    public init(kind: Kind, message: String, retryAfter: Double? = nil, isConfiguration: Bool = false) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
        self.isConfiguration = isConfiguration
    }

    public var description: String { message }

    /// Retrying cannot help until a person acts (a new token, a new key): said as an error.
    public var needsAttention: Bool { kind == .rejected || kind == .unusableCredential }
}
