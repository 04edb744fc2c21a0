/*
 * alacarte sandbox init, native: PID 1 of every crun sandbox when the host has this build
 * (src/drivers/crun/init-script.ts describes the design, and the busybox shell init this replaces
 * where there is none). It does what that script does in one program start instead of seven
 * (busybox sh, two `setsid`s, the starter's shell, `nsenter`, the deadline loop's busybox, the exec
 * agent): on a virtual machine whose every program start traps on cpuid, most of a sandbox's making
 * outside the runtime (bench/PROFILES.md, session 19).
 *
 * Usage: sandbox-init RUNDIR UID BUSYBOX. As root inside, before anything of a tenant runs:
 * - opens RUNDIR/wake (read-write, so it never sees end-of-file), or ends the sandbox;
 * - the exec agent (exec-agent.c, linked in) in a child of its own session, when RUNDIR/exec-in is
 *   a FIFO (without it the node's execs use `crun exec`);
 * - the starter in a child of its own session: waits (on RUNDIR/start, woken by the host) for the
 *   lease's RUNDIR/command.sh, then, still root, replaces itself with `BUSYBOX sh command.sh` once
 *   (nothing when the file is empty). Init never reads the lease's command or environment;
 * - then becomes UID/UID with no supplementary groups, which drops every capability, and makes
 *   itself non-dumpable, so that neither root inside (no CAP_SYS_PTRACE there) nor that uid can
 *   reach its memory, /proc/1/environ or /proc/1/fd; it names itself INIT_NAME, which the host
 *   waits for before it hands the sandbox out (init-process.ts);
 * - keeps the deadline: reads RUNDIR/deadline (whole epoch seconds; missing, unreadable or not a
 *   number ends the sandbox), exits once it has passed, and waits at most RECHECK seconds, cut
 *   short by a line in the wake FIFO or SIGUSR1; SIGCHLD reaps the orphans the kernel gives it, so
 *   that their zombies do not hold the sandbox's pids limit. When PID 1 exits, the kernel kills
 *   everything else in the pid namespace.
 * Every other signal keeps its default action, which the kernel does not deliver to a namespace's
 * init from inside it (SIGKILL and SIGSTOP included). After the start init never forks, so no fork
 * can fail on the pids limit a tenant fills.
 */
#define _GNU_SOURCE
#include "exec-agent.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The name init takes once it runs as UID, non-dumpable (NATIVE_INIT_NAME in init-process.ts). */
#define INIT_NAME "alacarte-init"
/* Longest wait before the deadline file is read again (INIT_RECHECK_SECONDS in init-script.ts). */
#define RECHECK 30

static char path_buf[4096];

static const char *in_run(const char *run_dir, const char *name) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", run_dir, name);
  return path_buf;
}

/* A child's start: a session of its own, default signals, nothing inherited but /dev/null. */
static void detach(void) {
  setsid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
}

static _Noreturn void starter(const char *run_dir, const char *busybox) {
  detach();
  /* Without blocking: root inside may read the host's line between the poll and the read. */
  int start = open(in_run(run_dir, "start"), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (start < 0) _exit(0);
  char command[4096];
  snprintf(command, sizeof command, "%s/command.sh", run_dir);
  struct stat st;
  while (stat(command, &st) != 0 || !S_ISREG(st.st_mode)) {
    struct pollfd p = {.fd = start, .events = POLLIN};
    if (poll(&p, 1, RECHECK * 1000) > 0) {
      char drain[256];
      (void)!read(start, drain, sizeof drain);
    }
  }
  close(start);
  if (st.st_size == 0) _exit(0);
  char *argv[] = {(char *)busybox, "sh", command, NULL};
  execve(busybox, argv, environ);
  _exit(127);
}

/* The deadline in whole epoch seconds, or -1 when the file is missing or not a number. */
static long long read_deadline(const char *run_dir) {
  int fd = open(in_run(run_dir, "deadline"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *end;
  errno = 0;
  long long d = strtoll(buf, &end, 10);
  if (errno || end == buf || (*end != '\n' && *end != 0) || d < 0) return -1;
  return d;
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  const char *run_dir = argv[1], *busybox = argv[3];
  char *end;
  long uid = strtol(argv[2], &end, 10);
  if (*end || uid <= 0 || uid > 65535) return 2;

  int wake = open(in_run(run_dir, "wake"), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (wake < 0) return 0;
  /* SIGUSR1 and SIGCHLD come through a signalfd; blocked from here so none is lost. */
  sigset_t mine;
  sigemptyset(&mine);
  sigaddset(&mine, SIGUSR1);
  sigaddset(&mine, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mine, NULL);

  struct stat st;
  if (lstat(in_run(run_dir, "exec-in"), &st) == 0 && S_ISFIFO(st.st_mode)) {
    pid_t agent = fork();
    if (agent == 0) {
      close(wake);
      detach();
      /* A fork of init: named for what it is, for whoever lists the sandbox's processes. */
      prctl(PR_SET_NAME, "alacarte-agent", 0, 0, 0);
      _exit(exec_agent_run(run_dir));
    }
  }
  /* Without its starter the sandbox could never run its lease's command: it ends, and its making
   * fails (the shell init's failed fork ended it too). Without the agent, execs use `crun exec`. */
  pid_t starting = fork();
  if (starting < 0) return 1;
  if (starting == 0) {
    close(wake);
    starter(run_dir, busybox);
  }

  /* No way back to root: groups, then gid, then uid (which clears every capability). */
  if (setgroups(0, NULL) != 0 || setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 ||
      setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)
    return 0;
  /* The kernel already makes it non-dumpable on the change of uid unless the host's
   * fs.suid_dumpable is 1: made so whatever that is. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return 0;
  int signals = signalfd(-1, &mine, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) return 0;
  prctl(PR_SET_NAME, INIT_NAME, 0, 0, 0);

  for (;;) {
    long long d = read_deadline(run_dir);
    if (d < 0 || d > LLONG_MAX / 1000) return 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* In milliseconds: the sandbox ends at the deadline's second, not up to a second after it. */
    long long left = d * 1000 - ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    if (left <= 0) return 0;
    if (left > RECHECK * 1000) left = RECHECK * 1000;
    struct pollfd p[2] = {{.fd = wake, .events = POLLIN}, {.fd = signals, .events = POLLIN}};
    if (poll(p, 2, (int)left) < 0 && errno != EINTR) return 0;
    /* One read of each per pass, and a bounded reap: the tenant may write into the wake FIFO (and
     * fork) as fast as it can, and what is left makes the next poll return at once, after the
     * deadline has been read again. */
    char drain[256];
    (void)!read(wake, drain, sizeof drain);
    struct signalfd_siginfo info[16];
    (void)!read(signals, info, sizeof info);
    for (int i = 0; i < 1024 && waitpid(-1, NULL, WNOHANG) > 0; i++) {
    }
  }
}
