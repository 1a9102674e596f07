// See include/CContainer.h. The children below follow runc (libcontainer/rootfs_linux.go,
// init_linux.go, standard_init_linux.go) step by step, written for a forked child of a
// multithreaded process: only async-signal-safe system calls, data prepared before fork(),
// errors reported through an O_CLOEXEC pipe (runc's "init pipe"): EOF means execve succeeded.
#define _GNU_SOURCE
#include "CContainer.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static const char *const step_names[CCONTAINER_STEP_COUNT] = {
    [CCONTAINER_STEP_NONE] = "none",
    [CCONTAINER_STEP_FORK] = "fork",
    [CCONTAINER_STEP_PIPE] = "pipe2",
    [CCONTAINER_STEP_PIDFD_OPEN] = "pidfd_open",
    [CCONTAINER_STEP_SIGNALS] = "sigaction (reset signal dispositions)",
    [CCONTAINER_STEP_SETNS_NET] = "setns CLONE_NEWNET",
    [CCONTAINER_STEP_SETNS_UTS] = "setns CLONE_NEWUTS",
    [CCONTAINER_STEP_UNSHARE] = "unshare CLONE_NEWNS",
    [CCONTAINER_STEP_MAKE_PRIVATE] = "mount --make-rprivate /",
    [CCONTAINER_STEP_MOUNT_TMPFS] = "mount tmpfs (container layer)",
    [CCONTAINER_STEP_MKDIR_LAYER] = "mkdir (overlay upper/work/root)",
    [CCONTAINER_STEP_MOUNT_OVERLAY] = "mount overlay (lowerdir=/)",
    [CCONTAINER_STEP_OPEN_ROOT] = "open (container root)",
    [CCONTAINER_STEP_WRITE_HOSTS] = "write /etc/hosts",
    [CCONTAINER_STEP_WRITE_HOSTNAME] = "write /etc/hostname",
    [CCONTAINER_STEP_MOUNT_PROC] = "mount proc",
    [CCONTAINER_STEP_BIND_DEV] = "mount --rbind /dev",
    [CCONTAINER_STEP_BIND_SYS] = "mount --bind /sys",
    [CCONTAINER_STEP_REMOUNT_SYS] = "mount -o remount,bind,ro /sys",
    [CCONTAINER_STEP_STAT_SOURCE] = "stat (mount source)",
    [CCONTAINER_STEP_MOUNTPOINT] = "mkdir/create (mount point in the container layer)",
    [CCONTAINER_STEP_BIND_MOUNT] = "mount --rbind",
    [CCONTAINER_STEP_REMOUNT_MOUNT] = "mount -o remount,bind,ro",
    [CCONTAINER_STEP_PIVOT_ROOT] = "pivot_root",
    [CCONTAINER_STEP_CHROOT] = "chroot",
    [CCONTAINER_STEP_UMOUNT_OLD_ROOT] = "umount2 (old root, MNT_DETACH)",
    [CCONTAINER_STEP_REMOUNT_ROOT] = "mount -o remount,bind,ro / (readOnlyRootFilesystem)",
    [CCONTAINER_STEP_CAPBSET_DROP] = "prctl PR_CAPBSET_DROP",
    [CCONTAINER_STEP_KEEPCAPS] = "prctl PR_SET_KEEPCAPS",
    [CCONTAINER_STEP_SETGROUPS] = "setgroups",
    [CCONTAINER_STEP_SETGID] = "setresgid",
    [CCONTAINER_STEP_SETUID] = "setresuid",
    [CCONTAINER_STEP_CHDIR] = "chdir (workingDir)",
    [CCONTAINER_STEP_CAPSET] = "capset",
    [CCONTAINER_STEP_AMBIENT] = "prctl PR_CAP_AMBIENT_CLEAR_ALL",
    [CCONTAINER_STEP_NO_NEW_PRIVS] = "prctl PR_SET_NO_NEW_PRIVS",
    [CCONTAINER_STEP_STDIO] = "dup2 (stdio)",
    [CCONTAINER_STEP_CLOEXEC] = "close_range CLOSE_RANGE_CLOEXEC",
    [CCONTAINER_STEP_EXECVE] = "execve",
    [CCONTAINER_STEP_PDEATHSIG] = "prctl PR_SET_PDEATHSIG",
    [CCONTAINER_STEP_HOLDER_NAMESPACES] = "unshare CLONE_NEWNET|CLONE_NEWUTS",
    [CCONTAINER_STEP_SETHOSTNAME] = "sethostname",
    [CCONTAINER_STEP_MKDIR_CWD] = "mkdir -p (workingDir, in the container layer)",
};

const char *CContainer_step_name(int32_t step) {
    if (step < 0 || step >= CCONTAINER_STEP_COUNT || step_names[step] == NULL) return "unknown step";
    return step_names[step];
}

void CContainer_errno_text(int error, char *buffer, size_t size) {
    char message[256];
    const char *text = strerror_r(error, message, sizeof message);  // GNU variant
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *name = strerrorname_np(error);
#else
    const char *name = NULL;
#endif
    if (name != NULL) {
        snprintf(buffer, size, "%s (%s)", name, text);
    } else {
        snprintf(buffer, size, "errno %d (%s)", error, text);
    }
}

// MARK: - Child-side helpers (async-signal-safe only)

// What a child writes to the report pipe: a note (kind 0) or the failure that ends it (kind 1).
// Smaller than PIPE_BUF, so each write is atomic.
typedef struct {
    int32_t kind;
    ccontainer_failure failure;
} report_record;

enum { REPORT_NOTE_CHROOT = 0, REPORT_FAILURE = 1, REPORT_READY = 2 };

static size_t child_strlen(const char *s) {
    size_t n = 0;
    while (s[n] != 0) n++;
    return n;
}

static void child_copy(char *to, size_t size, const char *from) {
    size_t i = 0;
    if (from != NULL) {
        for (; from[i] != 0 && i + 1 < size; i++) to[i] = from[i];
    }
    to[i] = 0;
}

static void child_write_record(int fd, int32_t kind, int32_t step, int32_t error, const char *detail) {
    report_record record;
    // No memset from libc: a plain loop keeps to what is safe after fork.
    char *bytes = (char *)&record;
    for (size_t i = 0; i < sizeof record; i++) bytes[i] = 0;
    record.kind = kind;
    record.failure.step = step;
    record.failure.error = error;
    child_copy(record.failure.detail, sizeof record.failure.detail, detail);
    ssize_t n;
    do {
        n = write(fd, &record, sizeof record);
    } while (n < 0 && errno == EINTR);
}

__attribute__((noreturn)) static void child_fail(int fd, int32_t step, int32_t error, const char *detail) {
    child_write_record(fd, REPORT_FAILURE, step, error, detail);
    _exit(127);
}

static void child_format_fd_path(char *buffer, int fd) {
    // "/proc/self/fd/N" without snprintf (not async-signal-safe).
    const char *prefix = "/proc/self/fd/";
    size_t n = 0;
    while (prefix[n] != 0) { buffer[n] = prefix[n]; n++; }
    char digits[16];
    int count = 0;
    unsigned value = (unsigned)fd;
    do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
    while (count > 0) buffer[n++] = digits[--count];
    buffer[n] = 0;
}

// The parent blocks every signal around fork(); the child resets dispositions to default (an
// ignored SIGPIPE or a Swift handler must not leak into the container) and unblocks, as glibc's
// posix_spawn and runc do.
static void child_reset_signals(void) {
    // The kernel's struct sigaction, through the raw system call: glibc's sigaction() refuses
    // its own signals 32 and 33, and an ignored one would stay ignored across execve.
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } action = {SIG_DFL, 0, NULL, 0};
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)syscall(SYS_rt_sigaction, sig, &action, NULL, sizeof action.mask);
    }
    uint64_t none = 0;
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
}

// Marks every descriptor above 2 close-on-exec: whatever the devcluster had open stays out of
// the container (runc `utils.CloseExecFrom`).
static int child_cloexec_from(int first) {
    if (syscall(SYS_close_range, (unsigned)first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
    for (int fd = first; fd < 65536; fd++) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

static int child_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode) {
    struct open_how how;
    char *bytes = (char *)&how;
    for (size_t i = 0; i < sizeof how; i++) bytes[i] = 0;
    how.flags = flags;
    how.mode = mode;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd;
    do {
        fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    } while (fd < 0 && (errno == EAGAIN || errno == EINTR));
    return fd;
}

// mkdir -p of `relative` inside the root `rootfd` (symlinks resolved as if rootfd were "/", the
// job of runc's securejoin), the last component a file when `file` is set. Returns an O_PATH fd
// of the mount point, or -1 with errno.
static int child_mountpoint(int rootfd, const char *relative, int file) {
    char path[4096];
    size_t length = child_strlen(relative);
    if (length == 0 || length >= sizeof path) { errno = ENAMETOOLONG; return -1; }
    child_copy(path, sizeof path, relative);
    int parent = -1;  // O_PATH fd of the resolved prefix so far (-1: the root)
    size_t start = 0;
    while (start < length) {
        size_t end = start;
        while (end < length && path[end] != '/') end++;
        int last = end == length;
        path[end] = 0;
        int fd = child_openat2(rootfd, path, O_PATH | O_CLOEXEC, 0);
        if (fd < 0 && errno == ENOENT) {
            int at = parent >= 0 ? parent : rootfd;
            const char *name = path + start;
            if (last && file) {
                int created = openat(at, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (created < 0 && errno != EEXIST) { int e = errno; if (parent >= 0) close(parent); errno = e; return -1; }
                if (created >= 0) close(created);
            } else if (mkdirat(at, name, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                if (parent >= 0) close(parent);
                errno = e;
                return -1;
            }
            fd = child_openat2(rootfd, path, O_PATH | O_CLOEXEC, 0);
        }
        if (fd < 0) { int e = errno; if (parent >= 0) close(parent); errno = e; return -1; }
        if (parent >= 0) close(parent);
        parent = fd;
        if (!last) path[end] = '/';
        start = end + 1;
    }
    return parent;
}

static int child_write_file(int rootfd, const char *relative, const char *content, size_t length) {
    int fd = child_openat2(rootfd, relative, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < length) {
        ssize_t n = write(fd, content + done, length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { int e = errno; close(fd); errno = e; return -1; }
        done += (size_t)n;
    }
    close(fd);
    return 0;
}

// mkdir -p inside the (already pivoted) root.
static int child_mkdir_p(const char *absolute) {
    char path[4096];
    size_t length = child_strlen(absolute);
    if (length >= sizeof path) { errno = ENAMETOOLONG; return -1; }
    child_copy(path, sizeof path, absolute);
    for (size_t i = 1; i <= length; i++) {
        if (path[i] != '/' && path[i] != 0) continue;
        char saved = path[i];
        path[i] = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST) return -1;
        path[i] = saved;
    }
    return 0;
}

static int child_move_fd_high(int fd) {
    if (fd < 0) return fd;
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

// runc standard_init_linux.go `Init` → rootfs_linux.go `prepareRootfs` (mounts, `pivotRoot`,
// `finalizeRootfs`) → init_linux.go `finalizeNamespace` (`ApplyBoundingSet`, `SetKeepCaps`,
// `setupUser`, chdir, `ClearKeepCaps`, `ApplyCaps`) → no_new_privs → execve.
__attribute__((noreturn)) static void container_child(const ccontainer_spec *s, int report, pid_t parent) {
    char fdpath[64];
    report = child_move_fd_high(report);
    // Die with the devcluster (the forking thread must live as long as it: see the header).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(report, CCONTAINER_STEP_PDEATHSIG, errno, NULL);
    if (getppid() != parent) _exit(127);
    child_reset_signals();
    if (s->netns_fd >= 0 && setns(s->netns_fd, CLONE_NEWNET) < 0) child_fail(report, CCONTAINER_STEP_SETNS_NET, errno, NULL);
    if (s->utsns_fd >= 0 && setns(s->utsns_fd, CLONE_NEWUTS) < 0) child_fail(report, CCONTAINER_STEP_SETNS_UTS, errno, NULL);
    if (unshare(CLONE_NEWNS) < 0) child_fail(report, CCONTAINER_STEP_UNSHARE, errno, NULL);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(report, CCONTAINER_STEP_MAKE_PRIVATE, errno, "/");

    // The writable layer: tmpfs (gone with the mount namespace), overlay over the host's /.
    if (mount("tmpfs", s->scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
        child_fail(report, CCONTAINER_STEP_MOUNT_TMPFS, errno, s->scratch_dir);
    if (mkdir(s->upper_dir, 0755) < 0) child_fail(report, CCONTAINER_STEP_MKDIR_LAYER, errno, s->upper_dir);
    if (mkdir(s->work_dir, 0755) < 0) child_fail(report, CCONTAINER_STEP_MKDIR_LAYER, errno, s->work_dir);
    if (mkdir(s->root_dir, 0755) < 0) child_fail(report, CCONTAINER_STEP_MKDIR_LAYER, errno, s->root_dir);
    if (mount("overlay", s->root_dir, "overlay", 0, s->overlay_options) < 0)
        child_fail(report, CCONTAINER_STEP_MOUNT_OVERLAY, errno, s->root_dir);
    int rootfd = open(s->root_dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (rootfd < 0) child_fail(report, CCONTAINER_STEP_OPEN_ROOT, errno, s->root_dir);

    // kubelet's managed /etc/hosts and the hostname, written into the upper layer before any
    // volume could cover /etc.
    if (s->hosts != NULL && child_write_file(rootfd, "etc/hosts", s->hosts, s->hosts_length) < 0)
        child_fail(report, CCONTAINER_STEP_WRITE_HOSTS, errno, "/etc/hosts");
    if (s->hostname != NULL && child_write_file(rootfd, "etc/hostname", s->hostname, s->hostname_length) < 0)
        child_fail(report, CCONTAINER_STEP_WRITE_HOSTNAME, errno, "/etc/hostname");

    // The system mounts, in runc's default-spec order.
    int target = child_mountpoint(rootfd, "proc", 0);
    if (target < 0) child_fail(report, CCONTAINER_STEP_MOUNTPOINT, errno, "/proc");
    child_format_fd_path(fdpath, target);
    if (mount("proc", fdpath, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) child_fail(report, CCONTAINER_STEP_MOUNT_PROC, errno, "/proc");
    close(target);
    target = child_mountpoint(rootfd, "dev", 0);
    if (target < 0) child_fail(report, CCONTAINER_STEP_MOUNTPOINT, errno, "/dev");
    child_format_fd_path(fdpath, target);
    if (mount("/dev", fdpath, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail(report, CCONTAINER_STEP_BIND_DEV, errno, "/dev");
    close(target);
    target = child_mountpoint(rootfd, "sys", 0);
    if (target < 0) child_fail(report, CCONTAINER_STEP_MOUNTPOINT, errno, "/sys");
    child_format_fd_path(fdpath, target);
    if (mount("/sys", fdpath, NULL, MS_BIND, NULL) < 0) child_fail(report, CCONTAINER_STEP_BIND_SYS, errno, "/sys");
    close(target);
    // Remount through a fresh fd: the old one still names the mount point underneath.
    target = child_openat2(rootfd, "sys", O_PATH | O_CLOEXEC, 0);
    if (target < 0) child_fail(report, CCONTAINER_STEP_REMOUNT_SYS, errno, "/sys");
    child_format_fd_path(fdpath, target);
    if (mount(NULL, fdpath, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        child_fail(report, CCONTAINER_STEP_REMOUNT_SYS, errno, "/sys");
    close(target);

    // The pod's volumes, in order.
    for (size_t i = 0; i < s->mount_count; i++) {
        const ccontainer_mount *m = &s->mounts[i];
        struct stat st;
        if (stat(m->source, &st) < 0) child_fail(report, CCONTAINER_STEP_STAT_SOURCE, errno, m->source);
        target = child_mountpoint(rootfd, m->target, !S_ISDIR(st.st_mode));
        if (target < 0) child_fail(report, CCONTAINER_STEP_MOUNTPOINT, errno, m->target);
        child_format_fd_path(fdpath, target);
        if (mount(m->source, fdpath, NULL, MS_BIND | MS_REC, NULL) < 0) child_fail(report, CCONTAINER_STEP_BIND_MOUNT, errno, m->source);
        close(target);
        if (m->read_only) {
            target = child_openat2(rootfd, m->target, O_PATH | O_CLOEXEC, 0);
            if (target < 0) child_fail(report, CCONTAINER_STEP_REMOUNT_MOUNT, errno, m->target);
            child_format_fd_path(fdpath, target);
            if (mount(NULL, fdpath, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
                child_fail(report, CCONTAINER_STEP_REMOUNT_MOUNT, errno, m->target);
            close(target);
        }
    }

    // rootfs_linux.go `pivotRoot`: pivot_root(".", "."), then detach the old root stacked on top.
    int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0) child_fail(report, CCONTAINER_STEP_PIVOT_ROOT, errno, "/");
    if (fchdir(rootfd) < 0) child_fail(report, CCONTAINER_STEP_PIVOT_ROOT, errno, s->root_dir);
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (fchdir(oldroot) < 0) child_fail(report, CCONTAINER_STEP_UMOUNT_OLD_ROOT, errno, "fchdir");
        if (mount("", ".", "", MS_SLAVE | MS_REC, "") < 0) child_fail(report, CCONTAINER_STEP_UMOUNT_OLD_ROOT, errno, "make-rslave");
        if (umount2(".", MNT_DETACH) < 0) child_fail(report, CCONTAINER_STEP_UMOUNT_OLD_ROOT, errno, "/");
        if (chdir("/") < 0) child_fail(report, CCONTAINER_STEP_UMOUNT_OLD_ROOT, errno, "chdir /");
    } else {
        // runc's `--no-pivot` path (msMoveRoot + chroot), reported to the parent.
        child_write_record(report, REPORT_NOTE_CHROOT, CCONTAINER_STEP_PIVOT_ROOT, errno, s->root_dir);
        if (chroot(".") < 0) child_fail(report, CCONTAINER_STEP_CHROOT, errno, s->root_dir);
        if (chdir("/") < 0) child_fail(report, CCONTAINER_STEP_CHROOT, errno, "chdir /");
    }
    close(oldroot);
    close(rootfd);
    // runc prepareRootfs: "make sure the cwd exists", created in the jail (so in the upper layer).
    if (child_mkdir_p(s->working_directory) < 0) child_fail(report, CCONTAINER_STEP_MKDIR_CWD, errno, s->working_directory);
    // rootfs_linux.go `finalizeRootfs`: readonlyPath "/" after every mount is in place.
    if (s->read_only_root && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
        child_fail(report, CCONTAINER_STEP_REMOUNT_ROOT, errno, "/");

    // Credentials and capabilities (init_linux.go `finalizeNamespace`).
    for (int cap = 0; cap <= s->last_capability && cap < 64; cap++) {
        if (s->capabilities & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
            char number[8];
            number[0] = (char)('0' + cap / 10);
            number[1] = (char)('0' + cap % 10);
            number[2] = 0;
            child_fail(report, CCONTAINER_STEP_CAPBSET_DROP, errno, number);
        }
    }
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail(report, CCONTAINER_STEP_KEEPCAPS, errno, NULL);
    // Raw system calls: glibc's wrappers broadcast set*id to every thread, a machinery that
    // has no business in a forked child (runc also uses the raw calls).
    if (syscall(SYS_setgroups, s->group_count, s->groups) < 0) child_fail(report, CCONTAINER_STEP_SETGROUPS, errno, NULL);
    if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0) child_fail(report, CCONTAINER_STEP_SETGID, errno, NULL);
    if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0) child_fail(report, CCONTAINER_STEP_SETUID, errno, NULL);
    // A credential change clears the parent-death signal: set it again (runc init_linux.go
    // `finalizeNamespace` → `pdeath.Restore()`).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(report, CCONTAINER_STEP_PDEATHSIG, errno, NULL);
    if (getppid() != parent) _exit(127);
    // As the user: a non-root uid has no effective capabilities here, so permissions apply.
    if (chdir(s->working_directory) < 0) child_fail(report, CCONTAINER_STEP_CHDIR, errno, s->working_directory);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) child_fail(report, CCONTAINER_STEP_KEEPCAPS, errno, NULL);
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = data[0].permitted = (uint32_t)s->capabilities;
    data[1].effective = data[1].permitted = (uint32_t)(s->capabilities >> 32);
    // No inheritable capabilities: containerd ≥ 1.6.2 and moby ≥ 20.10.14 stopped setting them
    // (CVE-2022-24769), so a non-root process cannot regain them through file capabilities.
    data[0].inheritable = data[1].inheritable = 0;
    if (syscall(SYS_capset, &header, data) < 0) child_fail(report, CCONTAINER_STEP_CAPSET, errno, NULL);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        child_fail(report, CCONTAINER_STEP_AMBIENT, errno, NULL);
    if (s->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(report, CCONTAINER_STEP_NO_NEW_PRIVS, errno, NULL);

    // stdio last: until here a failure is reported through the pipe, not printed.
    int in = s->stdin_fd >= 0 ? child_move_fd_high(s->stdin_fd) : open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = child_move_fd_high(s->stdout_fd);
    int err = child_move_fd_high(s->stderr_fd);
    if (in < 0 || out < 0 || err < 0) child_fail(report, CCONTAINER_STEP_STDIO, errno, NULL);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) child_fail(report, CCONTAINER_STEP_STDIO, errno, NULL);
    child_cloexec_from(3);
    execve(s->path, s->argv, s->envp);
    child_fail(report, CCONTAINER_STEP_EXECVE, errno, s->path);
}

// MARK: - Parent side

// Blocks every signal in the calling thread around fork(), so no handler runs in the child
// before it has reset the dispositions.
static void block_all(sigset_t *saved) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved);
}

static void restore(const sigset_t *saved) { pthread_sigmask(SIG_SETMASK, saved, NULL); }

static void set_failure(ccontainer_failure *failure, int32_t step, int32_t error, const char *detail) {
    memset(failure, 0, sizeof *failure);
    failure->step = step;
    failure->error = error;
    if (detail != NULL) snprintf(failure->detail, sizeof failure->detail, "%s", detail);
}

// Reads the child's records until EOF (execve happened) or a failure. Returns 0 on EOF, 1 on a
// failure (copied into `failure`), 2 on a READY record.
static int read_reports(int fd, int *used_chroot, ccontainer_failure *failure) {
    for (;;) {
        report_record record;
        size_t got = 0;
        while (got < sizeof record) {
            ssize_t n = read(fd, (char *)&record + got, sizeof record - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += (size_t)n;
        }
        if (got == 0) return 0;
        if (got < sizeof record) {
            set_failure(failure, CCONTAINER_STEP_PIPE, EIO, "short report from the child");
            return 1;
        }
        if (record.kind == REPORT_NOTE_CHROOT) {
            if (used_chroot != NULL) *used_chroot = 1;
            continue;
        }
        if (record.kind == REPORT_READY) return 2;
        *failure = record.failure;
        failure->detail[sizeof failure->detail - 1] = 0;
        return 1;
    }
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
}

pid_t CContainer_start(const ccontainer_spec *spec, int *pidfd, int *used_chroot, ccontainer_failure *failure) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        set_failure(failure, CCONTAINER_STEP_PIPE, errno, NULL);
        return -1;
    }
    pid_t parent = getpid();
    sigset_t saved;
    block_all(&saved);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        container_child(spec, pipefd[1], parent);
    }
    int fork_errno = errno;
    restore(&saved);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        set_failure(failure, CCONTAINER_STEP_FORK, fork_errno, NULL);
        return -1;
    }
    *used_chroot = 0;
    int outcome = read_reports(pipefd[0], used_chroot, failure);
    close(pipefd[0]);
    if (outcome != 0) {
        reap(pid);
        return -1;
    }
    // Nobody else waits for this pid, so it cannot be recycled before the pidfd is open.
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        int e = errno;
        kill(pid, SIGKILL);
        reap(pid);
        set_failure(failure, CCONTAINER_STEP_PIDFD_OPEN, e, NULL);
        return -1;
    }
    *pidfd = fd;
    return pid;
}

pid_t CContainer_start_holder(const char *hostname, size_t hostname_length, ccontainer_failure *failure) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        set_failure(failure, CCONTAINER_STEP_PIPE, errno, NULL);
        return -1;
    }
    pid_t parent = getpid();
    sigset_t saved;
    block_all(&saved);
    pid_t pid = fork();
    if (pid == 0) {
        int report = child_move_fd_high(pipefd[1]);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(report, CCONTAINER_STEP_PDEATHSIG, errno, NULL);
        if (getppid() != parent) _exit(0);  // the devcluster is already gone
        child_reset_signals();
        if (unshare(CLONE_NEWNET | CLONE_NEWUTS) < 0) child_fail(report, CCONTAINER_STEP_HOLDER_NAMESPACES, errno, NULL);
        if (sethostname(hostname, hostname_length) < 0) child_fail(report, CCONTAINER_STEP_SETHOSTNAME, errno, hostname);
        // Hold nothing of the devcluster's: its sockets and pipes must close when it closes them.
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
        child_write_record(report, REPORT_READY, CCONTAINER_STEP_NONE, 0, NULL);
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
            for (int fd = 3; fd < 65536; fd++) (void)close(fd);
        }
        for (;;) pause();
    }
    int fork_errno = errno;
    restore(&saved);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        set_failure(failure, CCONTAINER_STEP_FORK, fork_errno, NULL);
        return -1;
    }
    int outcome = read_reports(pipefd[0], NULL, failure);
    close(pipefd[0]);
    if (outcome == 2) return pid;
    if (outcome == 0) set_failure(failure, CCONTAINER_STEP_HOLDER_NAMESPACES, EPIPE, "the holder exited before it was ready");
    kill(pid, SIGKILL);
    reap(pid);
    return -1;
}

pid_t CContainer_spawn(const char *path, char *const *argv, char *const *envp, int netns_fd,
                       int stdin_fd, int stdout_fd, int stderr_fd, ccontainer_failure *failure) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        set_failure(failure, CCONTAINER_STEP_PIPE, errno, NULL);
        return -1;
    }
    sigset_t saved;
    block_all(&saved);
    pid_t pid = fork();
    if (pid == 0) {
        int report = child_move_fd_high(pipefd[1]);
        child_reset_signals();
        if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) child_fail(report, CCONTAINER_STEP_SETNS_NET, errno, NULL);
        int in = stdin_fd >= 0 ? child_move_fd_high(stdin_fd) : open("/dev/null", O_RDONLY | O_CLOEXEC);
        int out = stdout_fd >= 0 ? child_move_fd_high(stdout_fd) : open("/dev/null", O_WRONLY | O_CLOEXEC);
        int err = stderr_fd >= 0 ? child_move_fd_high(stderr_fd) : open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (in < 0 || out < 0 || err < 0) child_fail(report, CCONTAINER_STEP_STDIO, errno, NULL);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) child_fail(report, CCONTAINER_STEP_STDIO, errno, NULL);
        child_cloexec_from(3);
        execve(path, argv, envp);
        child_fail(report, CCONTAINER_STEP_EXECVE, errno, path);
    }
    int fork_errno = errno;
    restore(&saved);
    close(pipefd[1]);
    if (pid < 0) {
        close(pipefd[0]);
        set_failure(failure, CCONTAINER_STEP_FORK, fork_errno, NULL);
        return -1;
    }
    int outcome = read_reports(pipefd[0], NULL, failure);
    close(pipefd[0]);
    if (outcome != 0) {
        reap(pid);
        return -1;
    }
    return pid;
}

int CContainer_pidfd_signal(int pidfd, int signal) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0);
}

int CContainer_wait(pid_t pid, int *status) {
    for (;;) {
        pid_t r = waitpid(pid, status, 0);
        if (r >= 0) return 0;
        if (errno != EINTR) return -1;
    }
}

int CContainer_decode_status(int status, int *value) {
    if (WIFEXITED(status)) { *value = WEXITSTATUS(status); return 1; }
    if (WIFSIGNALED(status)) { *value = WTERMSIG(status); return 2; }
    return 0;
}

int CContainer_mount_tmpfs(const char *path, const char *options) {
    return mount("tmpfs", path, "tmpfs", 0, options);
}

int CContainer_unmount_detach(const char *path) {
    return umount2(path, MNT_DETACH);
}

int CContainer_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
