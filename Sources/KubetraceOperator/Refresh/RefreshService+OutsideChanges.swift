import KubeClient
import KubeRuntime
import KubetraceFormats
import AsyncAlgorithms

extension RefreshService {
    /// A change to the kubeconfig or pull Secret that this process did not write reschedules its
    /// loop; the operator Secret's token is kept from the same events. With a `secretFeed` (the
    /// daemon: the repair side's watch of the namespace) no second watch is made; without one
    /// (a RefreshService on its own) this side watches the namespace's Secrets itself.
    func watchForOutsideChanges(kubeconfig: CredentialLoop, registry: CredentialLoop?) async throws {
        var synced = false
        if let secretFeed {
            // A subscription ends only when this side fell too far behind: start over from the store.
            while !Task.isCancelled {
                synced = false
                for await event in secretFeed.subscribe() {
                    observe(event, synced: &synced, kubeconfig: kubeconfig, registry: registry)
                }
            }
            return
        }
        var options = ReflectorOptions.managed(namespace: ns)
        options.labelSelector = nil
        let reflector = Reflector<ManagedSecret>(client: client, options: options, logger: logger)
        let channel = AsyncChannel<[WatchEvent<ManagedSecret>]>()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await reflector.run(into: channel) }
            for await batch in channel {
                for event in batch { observe(event, synced: &synced, kubeconfig: kubeconfig, registry: registry) }
            }
        }
    }

    private func observe(_ event: WatchEvent<ManagedSecret>, synced: inout Bool, kubeconfig: CredentialLoop, registry: CredentialLoop?) {
        // The operator token, from the watch: a refresh then needs no GET of its own.
        switch event {
        case .added(let s) where s.meta.name == config.names.operatorSecret, .modified(let s) where s.meta.name == config.names.operatorSecret:
            let t = s.values["operator_token"].map { $0.string.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            cachedOperatorToken.set(t.isEmpty ? nil : SecretString(t))
        case .deleted(let s) where s.meta.name == config.names.operatorSecret:
            cachedOperatorToken.set(nil)
        default: break
        }
        guard case .modified(let s) = event, synced else {
            if case .synced = event { synced = true }
            return
        }
        if s.meta.name == config.names.kubeconfigSecret, !ownWrites.isOwn(s.meta.name, s.values["kubeconfig"]) { kubeconfig.externalChange() }
        if s.meta.name == config.names.registrySecret, !ownWrites.isOwn(s.meta.name, s.values[".dockerconfigjson"]) { registry?.externalChange() }
    }
}
