import { existsSync } from 'node:fs';
import { AnswerLines } from './answer-lines.js';
import { START_FIFO, WAKE_FIFO } from './init-script.js';
import { StandingChild } from './standing-child.js';

/**
 * mount(2) and umount2(2)'s system call numbers per Node `process.arch` (Linux's unistd tables):
 * Perl's `syscall` needs the numbers, and perl-base ships no syscall.ph. Elsewhere no helper runs.
 */
const SYSCALLS: Partial<Record<NodeJS.Architecture, { mount: number; umount2: number }>> = {
  x64: { mount: 165, umount2: 166 },
  arm64: { mount: 40, umount2: 39 },
};

/** Where Debian's essential perl-base puts perl. */
const PERL = '/usr/bin/perl';

/**
 * A symbolic link in every sandbox directory, made with it ahead of any lease, whose target is the
 * sandbox's name: a start hard-links it into the runtime directory under the lease's id (the lease
 * link, what list() and teardown go by), which adds a name to an inode made ahead instead of
 * allocating one on the start's path (on ext4 with many inodes recently removed, as a busy node's
 * data directory has: a new symbolic link ~130 µs of the node's thread, a link ~8 µs).
 */
export const LEASE_LINK = 'lease-link';

/**
 * The helper: one request per line on stdin, `<n>\t<op>\t<field>…`, answered `<n>\tok`, `<n>\ttaken`
 * or `<n>\terr\t<message>` on stdout, in order.
 *
 * `make <dir> <lower> <run state dir or ''> <disk MiB> <inodes> <id> <resolv.conf, hex, or ''>` does
 * what layer-pool.ts make()'s script does, step for step: `dir` made (answered `taken` when it
 * exists: not ours to remove), its LEASE_LINK, `layer`, `rootfs`, the run directory (in the run
 * state, linked, or `dir/run`), `run/bin`, `run/x`; a tmpfs of the disk's size on `layer`, its `upper` and `work`; the
 * four FIFOs of init, its starter and the exec agent; /etc/resolv.conf put in the upper layer as
 * etcInLayer() does; `upper`, the FIFOs and that file owned by `id`; the overlay on `rootfs`. Modes
 * are set exactly (umask 022). On a failure part-way nothing is undone here: the caller removes
 * `dir` (destroy).
 *
 * `destroy <dir>` does what DESTROY_SCRIPT (layer-pool.ts)
 * does, step for step, by system calls: the sandbox's run-state directory (the target of its `run`
 * link when that is `/…/<name>/run`), then unmounts `rootfs` and `layer`; if any directory left
 * under `dir` is still on another file system than `dir`'s parent, every mount at or under `dir`
 * from the mount table, deepest first (lazily when busy), and an error if some remain; only then
 * the tree removed (lstat-based: no link is followed, no mount point crossed once none is left).
 * A `dir` already gone is success, as is one another remover takes away meanwhile.
 */
const HELPER = String.raw`
use strict; use warnings; use File::Path qw(remove_tree);
$| = 1;
my ($MOUNT, $UMOUNT2) = @ARGV;
umask 022;
sub gone { my ($p) = @_; return !(-e $p || -l $p); }
sub mount_fs {
  my ($source, $target, $type, $data) = @_;
  syscall($MOUNT, $source, $target, $type, 0, $data) == 0 or die "mounting $type on $target: $!\n";
}
sub md { my ($p, $mode) = @_; mkdir($p, $mode) or die "mkdir $p: $!\n"; chmod($mode, $p) or die "chmod $p: $!\n"; }
sub fifo { my ($p) = @_; require POSIX; POSIX::mkfifo($p, 0600) or die "mkfifo $p: $!\n"; }
# etcInLayer() (layer-pool.ts): the resolv.conf a lease with egress reads, in the upper layer; the
# file's path when written (for the chown), else nothing.
sub etc_in_layer {
  my ($d, $lower, $text, $id) = @_;
  my $etc = "$lower/etc";
  return () if -l $etc || (-e $etc && !-d $etc);
  my $upper = "$d/layer/upper/etc";
  if (-d $etc) {
    my @s = stat($etc) or die "stat $etc: $!\n";
    md($upper, $s[2] & 07777);
    chown($s[4], $s[5], $upper) or die "chown $upper: $!\n";
  } else {
    md($upper, 0755);
    chown($id, $id, $upper) or die "chown $upper: $!\n";
  }
  return () unless !-d "$etc/resolv.conf" || -l "$etc/resolv.conf";
  open(my $f, '>', "$upper/resolv.conf") or die "resolv.conf: $!\n";
  print $f $text or die "resolv.conf: $!\n";
  close($f) or die "resolv.conf: $!\n";
  return ("$upper/resolv.conf");
}
sub make {
  my ($d, $lower, $rs, $mib, $inodes, $id, $resolv) = @_;
  $resolv = pack('H*', $resolv // '');
  unless (mkdir($d, 0755)) { return 'taken' if $!{EEXIST}; die "mkdir $d: $!\n"; }
  my ($name) = $d =~ m{([^/]+)$};
  symlink($name, "$d/${LEASE_LINK}") or die "link $d/${LEASE_LINK}: $!\n";
  md("$d/layer", 0755);
  md("$d/rootfs", 0755);
  if ($rs eq '') { md("$d/run", 0755); }
  else {
    md($rs, 0711);
    md("$rs/run", 0755);
    symlink("$rs/run", "$d/run") or die "link $d/run: $!\n";
    symlink("$rs/meta.json", "$d/meta.json") or die "link $d/meta.json: $!\n";
  }
  md("$d/run/bin", 0755);
  md("$d/run/x", 0711);
  mount_fs('tmpfs', "$d/layer", 'tmpfs', 'size=' . $mib . "m,nr_inodes=$inodes,mode=0755");
  md("$d/layer/upper", 0755);
  md("$d/layer/work", 0755);
  my @fifos = map { "$d/run/$_" } qw(${WAKE_FIFO} ${START_FIFO} agent-in exec-in agent-out);
  fifo($_) for @fifos;
  my @owned = ("$d/layer/upper", @fifos, $resolv eq '' ? () : etc_in_layer($d, $lower, $resolv, $id));
  chown($id, $id, @owned) == @owned or die "chown: $!\n";
  mount_fs('overlay', "$d/rootfs", 'overlay', "lowerdir=$lower,upperdir=$d/layer/upper,workdir=$d/layer/work");
  return 'ok';
}
sub umount2 { my ($p, $flags) = @_; return syscall($UMOUNT2, $p, $flags) == 0; }
sub other_fs_under {
  my ($d, $dev) = @_;
  my @todo = ($d);
  while (defined(my $x = pop @todo)) {
    my @s = lstat($x) or next;
    next unless -d _;
    return 1 if $s[0] != $dev;
    opendir(my $h, $x) or next;
    push @todo, map { "$x/$_" } grep { $_ ne '.' && $_ ne '..' } readdir $h;
    closedir $h;
  }
  return 0;
}
sub mounts_under {
  my ($d) = @_;
  open(my $f, '<', '/proc/self/mountinfo') or die "cannot read the mount table: $!\n";
  my @found;
  while (my $line = <$f>) {
    my $p = (split / /, $line)[4];
    next unless defined $p;
    $p =~ s/\\([0-7]{3})/chr(oct($1))/ge;
    push @found, $p if $p eq $d || index($p, "$d/") == 0;
  }
  close $f;
  return sort { length($b) <=> length($a) } @found;
}
sub destroy {
  my ($d) = @_;
  return if gone($d);
  if (-l "$d/run") {
    my $r = readlink("$d/run");
    my ($name) = $d =~ m{([^/]+)$};
    remove_tree($1, { error => \my $e }) if defined $r && defined $name && $r =~ m{^(/.*/\Q$name\E)/run$};
  }
  umount2("$d/rootfs", 0);
  umount2("$d/layer", 0);
  (my $parent = $d) =~ s{/[^/]*$}{};
  my @p = stat("$parent/") or die "cannot stat the directory of $d: $!\n";
  if (-d $d && !-l $d && other_fs_under($d, $p[0])) {
    for my $m (mounts_under($d)) { umount2($m, 0) or umount2($m, 2); }
    die "could not unmount everything under $d\n" if mounts_under($d);
  }
  for (1 .. 6) {
    remove_tree($d, { error => \my $e });
    return if gone($d);
  }
  die "could not remove $d\n";
}
while (my $line = <STDIN>) {
  chomp $line;
  my ($n, $op, @fields) = split /\t/, $line, -1;
  next unless defined $op;
  my $outcome = eval {
    if ($op eq 'destroy') { destroy($fields[0]); 'ok' }
    elsif ($op eq 'make') { make(@fields) }
    else { die "unknown request $op\n" }
  };
  if (defined $outcome) { print "$n\t$outcome\n"; }
  else { (my $why = $@) =~ s/[\t\n]+/ /g; print "$n\terr\t$why\n"; }
}
`;

interface Request {
  resolve: (outcome: 'ok' | 'taken') => void;
  reject: (err: Error) => void;
}

/** What make() needs: the directory, the image's root and the layer's size; see HELPER's `make`. */
export interface MakeRequest {
  /** The sandbox's directory (absolute), made here. */
  dir: string;
  /** The image's root, the overlay's lower directory. */
  lower: string;
  /** The sandbox's directory in the run state (run-state.ts), or undefined for `dir/run`. */
  runState: string | undefined;
  /** The writable layer's size in MiB, and its inode count. */
  diskMib: number;
  inodes: number;
  /** Owner (uid and gid) of the upper layer and the FIFOs: root inside the sandbox. */
  id: number;
  /** The text of /etc/resolv.conf put in the layer (etcInLayer()), or undefined for none. */
  resolvConf: string | undefined;
}

/**
 * Makes and removes sandbox directories (the writable layer's mounts, the run state, the FIFOs)
 * through one long-lived Perl process that makes the system calls itself, instead of busybox
 * scripts that fork an applet for every step: 7 ms of CPU per removal with the script against
 * 0.3 here, 4.75 ms per making against a few tenths (bench/host-fs.mjs, bench/PROFILES.md session
 * 10), on a path every lease takes. Perl is Debian's essential perl-base (no package to add).
 *
 * Requests are answered in order, one at a time. Like the spawner shell (both a StandingChild,
 * standing-child.ts), the helper has a process group of its own (a Ctrl-C or a SIGTERM to the
 * node's group must not cut a making or a removal short), ends when the node does (its stdin
 * closes), does not keep the node alive while idle, and should it die, the requests under way fail
 * and the next one starts a new helper.
 */
export class HostFs {
  private readonly helper: StandingChild;
  private readonly pending = new Map<number, Request>();
  private next = 0;
  /** An answer is a number, a word and a message; longer than this, it is not one. */
  private readonly lines = new AnswerLines(8192);

  private constructor(syscalls: { mount: number; umount2: number }) {
    this.helper = new StandingChild(
      'the host file helper',
      PERL,
      ['-e', HELPER, String(syscalls.mount), String(syscalls.umount2)],
      (text) => this.answers(text),
      (why) => this.fail(new Error(why)),
    );
  }

  /** The helper for this host, or undefined when it cannot run here (no perl, an unknown CPU). */
  static forHost(): HostFs | undefined {
    const syscalls = SYSCALLS[process.arch];
    return syscalls !== undefined && existsSync(PERL) ? new HostFs(syscalls) : undefined;
  }

  /**
   * Makes a sandbox's directory with its writable layer mounted, as layer-pool.ts make()'s script
   * does (see HELPER). Resolves 'made', or 'taken' when `dir` exists already (not the caller's to
   * remove); rejects with the helper's reason when a step failed (the caller removes `dir`), or
   * when the helper died.
   */
  async make(r: MakeRequest): Promise<'made' | 'taken'> {
    const outcome = await this.request('make', [
      r.dir,
      r.lower,
      r.runState ?? '',
      String(r.diskMib),
      String(r.inodes),
      String(r.id),
      Buffer.from(r.resolvConf ?? '', 'utf8').toString('hex'),
    ]);
    return outcome === 'taken' ? 'taken' : 'made';
  }

  /**
   * Unmounts whatever is mounted at or under `dir` and removes it (see HELPER). Resolves once it is
   * gone (or was already); rejects with the helper's reason when something stays mounted or could
   * not be removed, or when the helper died. `dir` is absolute, without tab or newline.
   */
  async destroy(dir: string): Promise<void> {
    await this.request('destroy', [dir]);
  }

  /** Paths are absolute, and no field holds a tab or a newline (the protocol's separators). */
  private request(op: string, fields: string[]): Promise<'ok' | 'taken'> {
    const [path, ...rest] = fields;
    if (!path?.startsWith('/') || fields.some((f) => /[\t\n]/.test(f)) || rest.length > 8)
      return Promise.reject(new Error(`not a sandbox directory: ${JSON.stringify(path)}`));
    return new Promise((resolve, reject) => {
      const n = this.next++;
      if (this.pending.size === 0) this.helper.hold();
      this.pending.set(n, { resolve, reject });
      this.helper.write(`${n}\t${op}\t${fields.join('\t')}\n`);
    });
  }

  /** Ends the helper (a removal under way runs to its end) and fails what is still pending. */
  close(): void {
    this.helper.end();
    this.fail(new Error('the host file helper was closed'));
  }

  /** Fails every request pending: the helper is gone (a new one serves the next request). */
  private fail(err: Error): void {
    this.lines.clear();
    for (const r of this.pending.values()) r.reject(err);
    this.pending.clear();
  }

  private answers(text: string): void {
    this.lines.feed(text, (line) => {
      const [n, outcome, why] = line.split('\t');
      const request = this.pending.get(Number(n));
      if (!request || (outcome !== 'ok' && outcome !== 'taken' && outcome !== 'err')) return;
      this.pending.delete(Number(n));
      if (this.pending.size === 0) this.helper.release();
      if (outcome !== 'err') request.resolve(outcome);
      else request.reject(new Error(why?.trim() || 'the host file helper failed'));
    });
  }
}

let shared: HostFs | null | undefined;

/** This process's HostFs (one helper for every driver), or undefined when none can run here. */
export function hostFs(): HostFs | undefined {
  if (shared === undefined) shared = HostFs.forHost() ?? null;
  return shared ?? undefined;
}
