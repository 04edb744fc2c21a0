/**
 * A minimal ustar writer for tests: it builds archives no honest tool would write (members named
 * `../x` or `/abs/x`, links pointing out), to check that the sandbox's tar keeps them inside.
 */
export interface TarMember {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '5' directory. */
  type?: '0' | '1' | '2' | '5';
  content?: Buffer | string;
  linkname?: string;
  mode?: number;
}

function field(header: Buffer, offset: number, length: number, value: string): void {
  header.write(value, offset, length, 'utf8');
}

function octal(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, '0')}\0`;
}

/** A tar archive of `members`, in order, with the two zero blocks at the end. */
export function tarOf(members: readonly TarMember[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const type = m.type ?? '0';
    const content = type === '0' ? Buffer.from(m.content ?? '') : Buffer.alloc(0);
    const header = Buffer.alloc(512);
    field(header, 0, 100, m.name);
    field(header, 100, 8, octal(m.mode ?? (type === '5' ? 0o755 : 0o644), 8));
    field(header, 108, 8, octal(0, 8));
    field(header, 116, 8, octal(0, 8));
    field(header, 124, 12, octal(content.length, 12));
    field(header, 136, 12, octal(1_700_000_000, 12));
    field(header, 148, 8, '        ');
    field(header, 156, 1, type);
    field(header, 157, 100, m.linkname ?? '');
    field(header, 257, 6, 'ustar\0');
    field(header, 263, 2, '00');
    let sum = 0;
    for (const byte of header) sum += byte;
    field(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    parts.push(header, content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A member read back by tarMembers. */
export interface ReadMember {
  name: string;
  type: string;
  content: Buffer;
  linkname: string;
}

/** The members of an (uncompressed) tar archive: name, type, link target and content. */
export function tarMembers(archive: Buffer): ReadMember[] {
  const out: ReadMember[] = [];
  let offset = 0;
  while (offset + 512 <= archive.length) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const text = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const size = Number.parseInt(text(124, 12).trim() || '0', 8);
    const prefix = text(345, 155);
    const name = prefix ? `${prefix}/${text(0, 100)}` : text(0, 100);
    const content = archive.subarray(offset + 512, offset + 512 + size);
    out.push({
      name,
      type: text(156, 1) || '0',
      content: Buffer.from(content),
      linkname: text(157, 100),
    });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}
