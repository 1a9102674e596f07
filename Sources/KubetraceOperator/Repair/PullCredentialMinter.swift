/// Who can mint new registry credentials and write the pull Secret with them: asked by the
/// pull-Secret repair when the Secret is broken and no good credentials are known.
/// `RefreshService` is one (Vultr re-minting, when the operator Secret allows it).
public protocol PullCredentialMinter: Sendable {
    /// Mints credentials and writes the operator namespace's pull Secret; throws when it cannot.
    func mintPullCredentials() async throws
}
