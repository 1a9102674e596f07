// The node's process primitives: fork-and-configure children for pod sandboxes, containers and
// helper programs. Everything a child needs is prepared by the caller before fork(); the child
// makes only async-signal-safe system calls (no malloc, no stdio, no locks), as runc's nsexec.c
// and glibc's posix_spawn do.
#ifndef CCONTAINER_H
#define CCONTAINER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// One bind mount: `target` is relative to the container root, clean, without a leading "/".
typedef struct {
    const char *source;
    const char *target;
    int read_only;
} ccontainer_mount;

/// What a container child does between fork and execve (runc libcontainer
/// rootfs_linux.go `prepareRootfs` + init_linux.go `finalizeNamespace`).
typedef struct {
    int netns_fd;               // setns(CLONE_NEWNET) target, -1: none
    int utsns_fd;               // setns(CLONE_NEWUTS) target, -1: none
    const char *scratch_dir;    // an empty host directory: the tmpfs goes there (in the child's mount ns only)
    const char *upper_dir;      // scratch_dir/upper
    const char *work_dir;       // scratch_dir/work
    const char *root_dir;       // scratch_dir/root: the overlay, then the new root
    const char *overlay_options;
    const ccontainer_mount *mounts;
    size_t mount_count;
    const char *hosts;          // /etc/hosts content
    size_t hosts_length;
    const char *hostname;       // /etc/hostname content
    size_t hostname_length;
    int read_only_root;
    uint32_t uid;
    uint32_t gid;
    const uint32_t *groups;
    size_t group_count;
    uint64_t capabilities;      // bit n: capability n is kept
    int last_capability;        // /proc/sys/kernel/cap_last_cap
    int no_new_privileges;
    const char *working_directory;
    const char *path;
    char *const *argv;
    char *const *envp;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
} ccontainer_spec;

/// Why a child did not get to execve: the step, errno, and the path or value involved.
typedef struct {
    int32_t step;               // a CCONTAINER_STEP_*
    int32_t error;              // errno
    char detail[1024];
} ccontainer_failure;

enum {
    CCONTAINER_STEP_NONE = 0,
    CCONTAINER_STEP_FORK,
    CCONTAINER_STEP_PIPE,
    CCONTAINER_STEP_PIDFD_OPEN,
    CCONTAINER_STEP_SIGNALS,
    CCONTAINER_STEP_SETNS_NET,
    CCONTAINER_STEP_SETNS_UTS,
    CCONTAINER_STEP_UNSHARE,
    CCONTAINER_STEP_MAKE_PRIVATE,
    CCONTAINER_STEP_MOUNT_TMPFS,
    CCONTAINER_STEP_MKDIR_LAYER,
    CCONTAINER_STEP_MOUNT_OVERLAY,
    CCONTAINER_STEP_OPEN_ROOT,
    CCONTAINER_STEP_WRITE_HOSTS,
    CCONTAINER_STEP_WRITE_HOSTNAME,
    CCONTAINER_STEP_MOUNT_PROC,
    CCONTAINER_STEP_BIND_DEV,
    CCONTAINER_STEP_BIND_SYS,
    CCONTAINER_STEP_REMOUNT_SYS,
    CCONTAINER_STEP_STAT_SOURCE,
    CCONTAINER_STEP_MOUNTPOINT,
    CCONTAINER_STEP_BIND_MOUNT,
    CCONTAINER_STEP_REMOUNT_MOUNT,
    CCONTAINER_STEP_PIVOT_ROOT,
    CCONTAINER_STEP_CHROOT,
    CCONTAINER_STEP_UMOUNT_OLD_ROOT,
    CCONTAINER_STEP_REMOUNT_ROOT,
    CCONTAINER_STEP_CAPBSET_DROP,
    CCONTAINER_STEP_KEEPCAPS,
    CCONTAINER_STEP_SETGROUPS,
    CCONTAINER_STEP_SETGID,
    CCONTAINER_STEP_SETUID,
    CCONTAINER_STEP_CHDIR,
    CCONTAINER_STEP_CAPSET,
    CCONTAINER_STEP_AMBIENT,
    CCONTAINER_STEP_NO_NEW_PRIVS,
    CCONTAINER_STEP_STDIO,
    CCONTAINER_STEP_CLOEXEC,
    CCONTAINER_STEP_EXECVE,
    CCONTAINER_STEP_PDEATHSIG,
    CCONTAINER_STEP_HOLDER_NAMESPACES,
    CCONTAINER_STEP_SETHOSTNAME,
    CCONTAINER_STEP_MKDIR_CWD,
    CCONTAINER_STEP_COUNT
};

/// The syscall (or library call) a step makes, for error messages: "mount overlay".
const char *CContainer_step_name(int32_t step);

/// errno as "ENOENT (No such file or directory)".
void CContainer_errno_text(int error, char *buffer, size_t size);

/// Forks a container child configured by `spec` (PR_SET_PDEATHSIG SIGKILL: call it from a
/// thread that lives as long as the process) and waits until it has called execve (the report
/// pipe is O_CLOEXEC, as runc's init pipe) or failed. Returns the pid with a pidfd in `*pidfd`;
/// on failure -1 with `failure` filled and the child reaped. `*used_chroot` is set when
/// pivot_root failed and the root was entered with chroot instead.
pid_t CContainer_start(const ccontainer_spec *spec, int *pidfd, int *used_chroot, ccontainer_failure *failure);

/// Forks a pod sandbox holder: PR_SET_PDEATHSIG SIGKILL, new network and UTS namespaces,
/// sethostname(hostname); then it pauses until killed. Returns once the namespaces exist, or -1
/// with `failure` filled. Call it from a thread that lives as long as the process: the parent-death
/// signal fires when the forking *thread* exits.
pid_t CContainer_start_holder(const char *hostname, size_t hostname_length, ccontainer_failure *failure);

/// Forks and execs a helper program (`ip`), optionally inside a network namespace; stdio from the
/// given fds (-1: /dev/null). Returns the pid, or -1 with `failure` filled.
pid_t CContainer_spawn(const char *path, char *const *argv, char *const *envp, int netns_fd,
                       int stdin_fd, int stdout_fd, int stderr_fd, ccontainer_failure *failure);

/// pidfd_send_signal(2): 0, or -1 with errno (ESRCH once the process has been reaped).
int CContainer_pidfd_signal(int pidfd, int signal);

/// waitpid(2) retried on EINTR; returns the raw status, or -1 with errno.
int CContainer_wait(pid_t pid, int *status);

/// Decodes a wait status: 1 and the exit code, 2 and the signal, 0 otherwise.
int CContainer_decode_status(int status, int *value);

/// pipe2(2) with O_CLOEXEC (Glibc's module map hides pipe2 from Swift).
int CContainer_pipe(int fds[2]);

/// mount(2) and umount2(2), so Swift need not know the flag constants.
int CContainer_mount_tmpfs(const char *path, const char *options);
int CContainer_unmount_detach(const char *path);

#endif
