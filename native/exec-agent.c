/*
 * alacarte exec agent, native (src/drivers/crun/exec-agent.ts has the protocol and the trust model).
 *
 * Runs inside every crun sandbox, started by its init as root inside, before the lease's command
 * exists. It does what the busybox shell agent does, without a shell: per exec one fork, a new
 * session (setsid) and one execve of the command, where the shell agent forks twice and starts
 * busybox setsid before the command: a program start less per exec, which on a virtual machine
 * whose every program start traps on cpuid is most of an exec's own CPU.
 *
 * Usage: exec-agent RUNDIR. Reads `<id>\n` lines (12 hex digits) from the FIFO RUNDIR/exec-in;
 * for each, reads the request RUNDIR/x/<id> (see parse_request), runs it with stdin from
 * RUNDIR/x/<id>.in or /dev/null and stdout, stderr onto the FIFOs RUNDIR/x/<id>.out, .err, and
 * writes `<id> p <pid>\n` then, once it has ended, `<id> <status>\n` (128 + n for signal n) into
 * the FIFO RUNDIR/agent-out. Nothing it reads is trusted beyond its own sandbox: ids are checked
 * to be hex, lines and requests are bounded, an answer that would block is dropped (the node then
 * ends that exec at its timeout).
 */
#define _GNU_SOURCE
#include "exec-agent.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ID_LEN 12
/* A request holds the command, its arguments and environment: bounded like the node's own request body. */
#define MAX_REQUEST (8u << 20)
#define MAX_ARGS 65536

struct running {
  pid_t pid;
  char id[ID_LEN + 1];
};

static const char *run_dir;
static struct running *runs;
static size_t n_runs, cap_runs;
static int answers = -1;

/* One answer line, in one write (a FIFO write of at most PIPE_BUF bytes is atomic); dropped if it would block. */
static void answer(const char *id, const char *what) {
  char line[64];
  int n = snprintf(line, sizeof line, "%s %s\n", id, what);
  if (n > 0 && n < (int)sizeof line) (void)!write(answers, line, (size_t)n);
}

static _Noreturn void fail(int status, const char *what, const char *name) {
  dprintf(2, "%s%s%s\n", name ? name : "", name ? ": " : "", what);
  _exit(status);
}

/* Reads the whole request file, or exits 126. */
static char *read_request(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail(126, "alacarte: the exec's request is gone", NULL);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_REQUEST)
    fail(126, "alacarte: the exec's request is not one", NULL);
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) fail(126, "alacarte: out of memory", NULL);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  buf[got] = 0;
  *len = got;
  return buf;
}

/* The next NUL-terminated field at *at, or NULL past the end. */
static char *field(char *buf, size_t len, size_t *at) {
  if (*at >= len) return NULL;
  char *s = buf + *at;
  char *end = memchr(s, 0, len - *at);
  if (!end) return NULL;
  *at = (size_t)(end - buf) + 1;
  return s;
}

/* A count field: decimal, at most MAX_ARGS. */
static long count_field(char *buf, size_t len, size_t *at) {
  char *s = field(buf, len, at);
  if (!s || !*s || strlen(s) > 6 || strspn(s, "0123456789") != strlen(s)) return -1;
  long n = strtol(s, NULL, 10);
  return n > MAX_ARGS ? -1 : n;
}

#define MALFORMED "alacarte: the exec's request is malformed"

/* A count field then that many fields, as a NULL-ended array (at least `least` of them), or exits 126. */
static char **list_field(char *buf, size_t len, size_t *at, long least) {
  long n = count_field(buf, len, at);
  if (n < least) fail(126, MALFORMED, NULL);
  char **list = calloc((size_t)n + 1, sizeof *list);
  if (!list) fail(126, "alacarte: out of memory", NULL);
  for (long i = 0; i < n; i++)
    if (!(list[i] = field(buf, len, at))) fail(126, MALFORMED, NULL);
  return list;
}

/* Opens `path` onto fd `target`, or exits 126 (saying so on stderr once that is the exec's own). */
static void onto(int target, const char *path, int flags) {
  int fd = open(path, flags | O_NOFOLLOW);
  if (fd < 0) fail(126, "alacarte: cannot open the exec's input or output", NULL);
  if (fd != target) {
    dup2(fd, target);
    close(fd);
  }
}

/*
 * The child's side of one exec, never returning. The request: NUL-terminated fields
 * `1` (the format), stdin (`0` or `1`), the working directory (empty: the image's), the PATH the
 * program is looked up in, the argument count then the arguments (the first the program, as
 * given), the environment's count then its NAME=value entries.
 */
static _Noreturn void run_exec(const char *id) {
  char path[4096];
  /* The exec's stderr first (the node reads it already): a request that cannot be run says why there. */
  snprintf(path, sizeof path, "%s/x/%s.err", run_dir, id);
  onto(2, path, O_WRONLY);
  snprintf(path, sizeof path, "%s/x/%s", run_dir, id);
  size_t len;
  char *req = read_request(path, &len);
  size_t at = 0;
  char *format = field(req, len, &at), *has_stdin = field(req, len, &at);
  char *cwd = field(req, len, &at), *search = field(req, len, &at);
  if (!format || strcmp(format, "1") != 0 || !has_stdin || !cwd || !search) fail(126, MALFORMED, NULL);
  char **argv = list_field(req, len, &at, 1);
  char **envp = list_field(req, len, &at, 0);

  snprintf(path, sizeof path, "%s/x/%s.in", run_dir, id);
  onto(0, strcmp(has_stdin, "1") == 0 ? path : "/dev/null", O_RDONLY);
  snprintf(path, sizeof path, "%s/x/%s.out", run_dir, id);
  onto(1, path, O_WRONLY);

  if (*cwd && chdir(cwd) != 0) {
    dprintf(2, "cd: can't cd to %s: %s\n", cwd, strerror(errno));
    _exit(126);
  }
  /* Looked up in the given PATH, as `crun exec` does; the first regular executable file wins. */
  const char *program = argv[0];
  char found[4096];
  if (!strchr(program, '/')) {
    const char *d = search;
    int ok = 0;
    /* As the shell splits PATH on `:`: an empty PATH has no directory, a trailing `:` adds none,
     * another empty one is `.`. */
    for (; *d;) {
      const char *colon = strchr(d, ':');
      size_t dl = colon ? (size_t)(colon - d) : strlen(d);
      int n = dl == 0 ? snprintf(found, sizeof found, "./%s", program)
                      : snprintf(found, sizeof found, "%.*s/%s", (int)dl, d, program);
      struct stat st;
      if (n > 0 && n < (int)sizeof found && stat(found, &st) == 0 && S_ISREG(st.st_mode) &&
          access(found, X_OK) == 0) {
        ok = 1;
        break;
      }
      if (!colon) break;
      d = colon + 1;
    }
    if (!ok) fail(127, "not found", program);
    program = found;
  }
  execve(program, argv, envp);
  int e = errno;
  dprintf(2, "alacarte: can't execute '%s': %s\n", argv[0], strerror(e));
  _exit(e == ENOENT ? 127 : 126);
}

/*
 * An exec the agent could not start: says why on the exec's stderr (opened without waiting: the
 * node holds its read end while the exec runs; none, nothing said), then answers 126.
 */
static void refuse(const char *id, const char *why, int err, const char *hint) {
  char path[4096];
  snprintf(path, sizeof path, "%s/x/%s.err", run_dir, id);
  int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    dprintf(fd, "alacarte: %s: %s%s\n", why, strerror(err), hint);
    close(fd);
  }
  answer(id, "126");
}

static void start(const char *id) {
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    refuse(id, "cannot start the command", e,
           e == EAGAIN ? " (the sandbox runs as many processes as its offer allows)" : "");
    return;
  }
  if (pid == 0) {
    /* A session of its own first, so that a timeout finds all it started (the node kills by
     * session only one the command leads); then default signal handling and mask. */
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
    close(3);
    close(answers);
    run_exec(id);
  }
  if (n_runs == cap_runs) {
    size_t cap = cap_runs ? cap_runs * 2 : 64;
    struct running *grown = realloc(runs, cap * sizeof *runs);
    if (!grown) {
      /* Cannot follow it: it does not run untracked. */
      kill(pid, SIGKILL);
      refuse(id, "cannot follow the command", ENOMEM, "");
      return;
    }
    runs = grown;
    cap_runs = cap;
  }
  runs[n_runs].pid = pid;
  memcpy(runs[n_runs].id, id, ID_LEN + 1);
  n_runs++;
  char what[32];
  snprintf(what, sizeof what, "p %d", (int)pid);
  answer(id, what);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (size_t i = 0; i < n_runs; i++) {
      if (runs[i].pid != pid) continue;
      char what[8];
      snprintf(what, sizeof what, "%d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      answer(runs[i].id, what);
      runs[i] = runs[--n_runs];
      break;
    }
  }
}

static int is_id(const char *s, size_t n) {
  if (n != ID_LEN) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/*
 * The agent's loop on RUNDIR `dir` (see the top of this file); returns only when its FIFOs cannot be
 * opened or polled. Called by main below, and by the native init (sandbox-init.c) in a child of its
 * own, which saves the sandbox a program start.
 */
int exec_agent_run(const char *dir) {
  run_dir = dir;
  char path[4096];
  snprintf(path, sizeof path, "%s/exec-in", run_dir);
  /* Read-write: a FIFO held so never sees end-of-file, nor its answers SIGPIPE. Without blocking:
   * root inside may read a line between the poll and the read (as in sandbox-init.c's starter),
   * which would hold the agent, and the answers of the execs it runs, until the next line. */
  int requests = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
  snprintf(path, sizeof path, "%s/agent-out", run_dir);
  answers = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK);
  if (requests < 0 || answers < 0) return 0;
  if (requests != 3) {
    dup2(requests, 3);
    close(requests);
  }
  fcntl(answers, F_SETFD, FD_CLOEXEC);
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int children = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (children < 0) return 0;

  char line[64];
  size_t used = 0;
  int overlong = 0;
  for (;;) {
    struct pollfd fds[2] = {{.fd = 3, .events = POLLIN}, {.fd = children, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    if (fds[1].revents) {
      struct signalfd_siginfo info;
      while (read(children, &info, sizeof info) == sizeof info) {
      }
      reap();
    }
    if (!(fds[0].revents & POLLIN)) continue;
    char buf[4096];
    ssize_t n = read(3, buf, sizeof buf);
    if (n <= 0) continue;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] != '\n') {
        if (used < sizeof line) line[used++] = buf[i];
        else overlong = 1;
        continue;
      }
      if (!overlong && is_id(line, used)) {
        line[used] = 0;
        start(line);
      }
      used = 0;
      overlong = 0;
    }
  }
}

#ifndef EXEC_AGENT_NO_MAIN
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  return exec_agent_run(argv[1]);
}
#endif
