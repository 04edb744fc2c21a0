import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { AnswerLines } from './answer-lines.js';
import { refOf } from './spawner.js';

/**
 * umount2(2)'s system call number per Node `process.arch` (Linux's unistd tables): Perl's
 * `syscall` needs the number, and perl-base ships no syscall.ph. Elsewhere no helper runs.
 */
const UMOUNT2: Partial<Record<NodeJS.Architecture, number>> = { x64: 166, arm64: 39 };

/** Where Debian's essential perl-base puts perl. */
const PERL = '/usr/bin/perl';

/**
 * The helper: one request per line on stdin, `<n>\t<op>\t<path>`, answered `<n>\tok` or
 * `<n>\terr\t<message>` on stdout, in order. `destroy <dir>` does what DESTROY_SCRIPT (layer-pool.ts)
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
my $UMOUNT2 = shift @ARGV;
sub gone { my ($p) = @_; return !(-e $p || -l $p); }
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
  my ($n, $op, $path) = split /\t/, $line, 3;
  next unless defined $path;
  if (eval { die "unknown request $op\n" unless $op eq 'destroy'; destroy($path); 1 }) { print "$n\tok\n"; }
  else { (my $why = $@) =~ s/[\t\n]+/ /g; print "$n\terr\t$why\n"; }
}
`;

interface Request {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Removes sandbox directories (unmount, then delete) through one long-lived Perl process that makes
 * the system calls itself, instead of a busybox script that forks an applet for every step: about
 * 5.8 ms of CPU per removal with the script against a few tenths here (bench/PROFILES.md, session
 * 10), on a path every lease takes. Perl is Debian's essential perl-base (no package to add).
 *
 * Requests are answered in order, one at a time. Like the spawner shell (spawner.ts), the helper
 * has a process group of its own (a Ctrl-C or a SIGTERM to the node's group must not cut a removal
 * short), ends when the node does (its stdin closes), does not keep the node alive while idle, and
 * should it die, the requests under way fail and the next one starts a new helper.
 */
export class HostFs {
  private helper: ChildProcess | undefined;
  private readonly pending = new Map<number, Request>();
  private next = 0;
  /** An answer is a number, a word and a message; longer than this, it is not one. */
  private readonly lines = new AnswerLines(8192);

  private constructor(private readonly umount2: number) {}

  /** The helper for this host, or undefined when it cannot run here (no perl, an unknown CPU). */
  static forHost(): HostFs | undefined {
    const n = UMOUNT2[process.arch];
    return n !== undefined && existsSync(PERL) ? new HostFs(n) : undefined;
  }

  /**
   * Unmounts whatever is mounted at or under `dir` and removes it (see HELPER). Resolves once it is
   * gone (or was already); rejects with the helper's reason when something stays mounted or could
   * not be removed, or when the helper died. `dir` is absolute, without tab or newline.
   */
  destroy(dir: string): Promise<void> {
    if (!dir.startsWith('/') || /[\t\n]/.test(dir))
      return Promise.reject(new Error(`not a sandbox directory: ${JSON.stringify(dir)}`));
    return new Promise((resolve, reject) => {
      const n = this.next++;
      const helper = this.ensureHelper();
      if (this.pending.size === 0) refOf(helper.stdout)?.ref();
      this.pending.set(n, { resolve, reject });
      helper.stdin?.write(`${n}\tdestroy\t${dir}\n`);
    });
  }

  /** Ends the helper (a removal under way runs to its end) and fails what is still pending. */
  close(): void {
    this.helper?.stdin?.end();
    this.helper = undefined;
    for (const r of this.pending.values()) r.reject(new Error('the host file helper was closed'));
    this.pending.clear();
  }

  private ensureHelper(): ChildProcess {
    if (this.helper) return this.helper;
    const helper = spawn(PERL, ['-e', HELPER, String(this.umount2)], {
      stdio: ['pipe', 'pipe', 'ignore'],
      detached: true,
    });
    helper.stdout?.setEncoding('utf8');
    helper.stdout?.on('data', (text: string) => this.answers(text));
    const failed = (why: string) => {
      if (this.helper !== helper) return;
      this.helper = undefined;
      this.lines.clear();
      for (const r of this.pending.values()) r.reject(new Error(why));
      this.pending.clear();
    };
    helper.on('error', (e) => failed(`the host file helper failed: ${String(e)}`));
    helper.on('exit', (code) => failed(`the host file helper exited (${code})`));
    // As the spawner's: the exit may never be reaped once the node has nothing else to do.
    helper.stdout?.on('end', () => failed('the host file helper closed its output'));
    helper.stdin?.on('error', () => {});
    helper.unref();
    refOf(helper.stdin)?.unref();
    refOf(helper.stdout)?.unref();
    this.helper = helper;
    return helper;
  }

  private answers(text: string): void {
    this.lines.feed(text, (line) => {
      const [n, outcome, why] = line.split('\t');
      const request = this.pending.get(Number(n));
      if (!request || (outcome !== 'ok' && outcome !== 'err')) return;
      this.pending.delete(Number(n));
      if (this.pending.size === 0 && this.helper) refOf(this.helper.stdout)?.unref();
      if (outcome === 'ok') request.resolve();
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
