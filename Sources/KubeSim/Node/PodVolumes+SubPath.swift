import Foundation

extension PodVolumes {
    /// The host path a volume mount with `subPath` binds, as the kubelet prepares it
    /// (pkg/kubelet/kubelet_pods.go `makeMounts`; pkg/volume/util/subpath/subpath_linux.go
    /// `doSafeMakeDir` and `doBindSubPath`):
    /// - an absolute path or a `..` component is refused (`ValidatePathNoBacksteps`; the API
    ///   server refuses them in `subPath` too, but not what a `subPathExpr` expands to);
    /// - a missing path is created with the volume's mode below the deepest existing directory,
    ///   which must resolve inside the volume, one component at a time without following
    ///   symlinks (mkdirat/openat with O_NOFOLLOW);
    /// - the path with its symlinks resolved must stay inside the volume; that resolved path is
    ///   what gets bound.
    /// The messages are the kubelet's, which keep host paths out of the Pod's status.
    static func subPathHostPath(_ subPath: String, volumePath: String, mountName: String, container: String) throws(ContainerConfigError) -> String {
        if subPath.hasPrefix("/") {
            throw ContainerConfigError(message: "error SubPath `\(subPath)` must not be an absolute path")
        }
        if subPath.split(separator: "/").contains("..") {
            throw ContainerConfigError(message: "unable to provision SubPath `\(subPath)`: must not contain '..'")
        }
        let cannotCreate = ContainerConfigError(message: "failed to create subPath directory for volumeMount \"\(mountName)\" of container \"\(container)\"")
        let cannotPrepare = ContainerConfigError(message: "failed to prepare subPath for volumeMount \"\(mountName)\" of container \"\(container)\"")
        guard let base = resolved(volumePath) else { throw cannotPrepare }
        let components = subPath.split(separator: "/").map(String.init).filter { $0 != "." && !$0.isEmpty }
        // The deepest existing prefix (symlinks followed, as the kubelet's openat loop does).
        var existing = 0
        var st = stat()
        while existing < components.count, stat(join(base, components[...existing]), &st) == 0 { existing += 1 }
        if existing < components.count {
            guard let parent = resolved(join(base, components[..<existing])), isWithin(parent, base),
                  stat(base, &st) == 0,
                  createDirectories(components[existing...], under: parent, mode: st.st_mode & 0o7777) else { throw cannotCreate }
        }
        guard let target = resolved(join(base, components[...])), isWithin(target, base) else { throw cannotPrepare }
        return target
    }

    private static func join(_ base: String, _ components: ArraySlice<String>) -> String {
        components.isEmpty ? base : (base == "/" ? "" : base) + "/" + components.joined(separator: "/")
    }

    private static func isWithin(_ path: String, _ base: String) -> Bool {
        base == "/" || path == base || path.hasPrefix(base + "/")
    }

    /// realpath(3); nil when the path does not resolve.
    private static func resolved(_ path: String) -> String? {
        guard let p = Glibc.realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// mkdir of each of `components` in turn below `parent` (a resolved path), never following a
    /// symlink: a component that appeared as one meanwhile fails the open.
    private static func createDirectories(_ components: ArraySlice<String>, under parent: String, mode: mode_t) -> Bool {
        var fd = open(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        for component in components {
            let created = mkdirat(fd, component, mode) == 0
            if !created && errno != EEXIST { return false }
            let child = openat(fd, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard child >= 0 else { return false }
            // mkdirat's mode went through the umask.
            if created { _ = fchmod(child, mode) }
            close(fd)
            fd = child
        }
        return true
    }
}
