extension RefreshService: PullCredentialMinter {
    /// The registry loop's refresh, asked for by the repair side.
    public func mintPullCredentials() async throws {
        _ = try await refreshRegistry()
    }
}
