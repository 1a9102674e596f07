import ArgumentParser
import KubetraceOperator

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Export the operator credentials (operator, registry and kubeconfig Secrets) encrypted in the age format.",
        discussion: "Decrypt with `kubetrace-operator restore --identity KEYFILE FILE` or `age -d -i KEYFILE FILE`. The plaintext is never written to disk.")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: ArgumentHelp("An age X25519 recipient (age1…, from age-keygen); repeat for several.", valueName: "age1…")) var recipient: [String] = []
    @Option(help: ArgumentHelp("Where to write the encrypted backup (mode 0600), or - for stdout.", valueName: "file|-")) var output: String

    var request: BackupRequest {
        var r = BackupRequest()
        r.cluster = cluster.selection
        r.recipient = recipient
        r.output = output
        return r
    }

    func run() async throws { try await request.run() }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Apply an encrypted credential backup: create missing Secrets; leave differing ones unless --overwrite.",
        discussion: "The whole file is decrypted and authenticated in memory before anything is written; a wrong identity, a truncated or altered file changes nothing (exit 2).")

    @OptionGroup var cluster: ClusterOptions
    @Option(help: ArgumentHelp("age identity file (AGE-SECRET-KEY-1… lines, from age-keygen).", valueName: "keyfile")) var identity: String
    @Flag(help: "Replace Secrets whose content differs from the backup (guarded by their resourceVersion).") var overwrite = false
    @Argument(help: ArgumentHelp("The encrypted backup.", valueName: "file")) var file: String

    var request: RestoreRequest {
        var r = RestoreRequest()
        r.cluster = cluster.selection
        r.identity = identity
        r.overwrite = overwrite
        r.file = file
        return r
    }

    func run() async throws { try await request.run() }
}
