import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ENV_NAME_PATTERN } from '../../core/lease-request.js';

/**
 * What an image says about how to run it, kept beside its root filesystem as
 * `<imagesDir>/.<name>.alacarte-image.json` (the root filesystem stays exactly the image's). For a
 * pulled image it is taken from the OCI image config (`Env`, `WorkingDir`, `Entrypoint`, `Cmd`;
 * OCI image-spec config.md); for `debian` it is written by its build; an image without one (the
 * built-in busybox, a tree an operator dropped in) runs with the defaults below.
 *
 * How a sandbox uses it (docker run semantics): its `env` comes first, then the lease's `env`
 * (the lease wins); exec, spawn and attach run in `working_dir` with that environment (on the crun
 * and the LXD driver alike); the lease's `command`, when given, replaces `cmd` and is appended to
 * `entrypoint`; without a command, `entrypoint` + `cmd` run (nothing when both are empty). Exec,
 * spawn and attach never go through the entrypoint (as `docker exec`).
 */
export interface ImageConfig {
  /** One line for renters (GET /v1/offers `image_details`). */
  description: string;
  /** Where it came from: the reference it was pulled from, or how it was built. */
  source?: string;
  /** Size of the root filesystem in MiB (rounded up), measured when it was installed. */
  size_mib?: number;
  env: Record<string, string>;
  working_dir: string;
  entrypoint: string[];
  cmd: string[];
  /** The shell of an interactive terminal (attach). */
  shell: string;
}

const MAX_ARGS = 1024;
const argv = z
  .array(
    z
      .string()
      .max(65_536)
      .refine((s) => !s.includes('\0')),
  )
  .max(MAX_ARGS);

/** Bounded like a lease's own request (core/lease-request.ts), so nothing in it can grow the node. */
const configSchema = z.object({
  description: z.string().max(200).default(''),
  source: z.string().max(1024).optional(),
  size_mib: z.number().int().min(0).optional(),
  env: z
    .record(
      z.string().regex(ENV_NAME_PATTERN),
      z
        .string()
        .max(8192)
        .refine((s) => !s.includes('\0')),
    )
    .refine((e) => Object.keys(e).length <= 128, 'at most 128 variables')
    .default({}),
  working_dir: z
    .string()
    .max(4096)
    .regex(/^\/[^\0]*$/, 'an absolute path')
    .default('/'),
  entrypoint: argv.default([]),
  cmd: argv.default([]),
  shell: z
    .string()
    .max(256)
    .regex(/^\/[^\0]*$/)
    .default('/bin/sh'),
});

/** The defaults: what an image without a config file runs with. */
export const DEFAULT_IMAGE_CONFIG: ImageConfig = configSchema.parse({});

/** Where an image's config sits: beside its root filesystem, never inside it. */
export function imageConfigFile(imageDir: string): string {
  return join(dirname(imageDir), `.${basename(imageDir)}.alacarte-image.json`);
}

/**
 * The image's config, or the defaults when it has none. Throws (with the file named) when the file
 * is there but not a valid config: an operator's edit gone wrong should not run with defaults.
 */
export function readImageConfig(imageDir: string): ImageConfig {
  const file = imageConfigFile(imageDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ...DEFAULT_IMAGE_CONFIG };
    throw e;
  }
  const parsed = configSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** Checks a config against the same bounds as reading it does, then writes it atomically. */
export function writeImageConfig(imageDir: string, config: ImageConfig): void {
  const valid = configSchema.parse(config);
  const file = imageConfigFile(imageDir);
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(valid, null, 2)}\n`);
  renameSync(tmp, file);
}

/**
 * The OCI image config's runtime part (`config` of an image config blob) as an ImageConfig.
 * Variables whose name a shell cannot export, or with a NUL, are dropped and named in `dropped`.
 */
export function fromOciConfig(
  oci: unknown,
  extra: { description: string; source: string },
): { config: ImageConfig; dropped: string[] } {
  const c =
    (typeof oci === 'object' && oci !== null ? (oci as { config?: unknown }).config : undefined) ?? {};
  const o = c as { Env?: unknown; WorkingDir?: unknown; Entrypoint?: unknown; Cmd?: unknown };
  const strings = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  const env: Record<string, string> = {};
  const dropped: string[] = [];
  for (const entry of strings(o.Env)) {
    const eq = entry.indexOf('=');
    const name = eq < 0 ? entry : entry.slice(0, eq);
    const value = eq < 0 ? '' : entry.slice(eq + 1);
    if (ENV_NAME_PATTERN.test(name) && !value.includes('\0') && value.length <= 8192) env[name] = value;
    else dropped.push(name.slice(0, 64));
  }
  const workingDir = typeof o.WorkingDir === 'string' && o.WorkingDir.startsWith('/') ? o.WorkingDir : '/';
  const config = configSchema.parse({
    description: extra.description.slice(0, 200),
    source: extra.source.slice(0, 1024),
    env,
    working_dir: workingDir,
    entrypoint: strings(o.Entrypoint),
    cmd: strings(o.Cmd),
  });
  return { config, dropped };
}

/**
 * What a lease's sandbox runs at start, as `docker run IMAGE [COMMAND...]` would: the entrypoint
 * followed by the lease's command, or by the image's cmd when the lease gives none.
 */
export function leaseArgv(config: ImageConfig, command: readonly string[] | undefined): string[] {
  const tail = command && command.length > 0 ? command : config.cmd;
  return [...config.entrypoint, ...tail];
}
