import type { z } from 'zod';
import { MCP_READ_MAX_BYTES } from './file-content.js';
import {
  execInputs,
  leaseIdInput,
  offerInput,
  readFileInputs,
  secondsInput,
  writeFileInputs,
} from './tool-inputs.js';

/**
 * The tool definitions (descriptions, input shapes, annotations) both MCP servers give alike:
 * the node's `POST /mcp` (node-tools.ts) and the renter's `alacarte mcp` (renter-tools.ts). What
 * differs between them (who pays, where credentials live) stays in each server; the credential
 * argument is passed in because the node requires it and the renter's lease book makes it optional.
 */

/** The tools' version, shown to MCP clients: API.md's version 1. */
export const AGENT_TOOLS_VERSION = '1.0.0';

/** A tool that changes nothing: clients may call it without asking. */
const READ_ONLY = { readOnlyHint: true };

/** A lease's id and its credential: the arguments of every tool that acts on one lease. */
function leaseInputs<C extends z.ZodTypeAny>(credential: C) {
  return { lease_id: leaseIdInput, token: credential };
}

/** offers: `seller` names the node as the server sees it ("this node", "the node"). */
export function offersTool(seller: string) {
  return {
    description: `What ${seller} sells: offers with prices per hour, images, and the mints whose Cashu it takes.`,
    annotations: READ_ONLY,
  };
}

/** quote: the node's price rule, the same through either server. */
export const quoteTool = {
  description: 'The price of an offer for a number of seconds: ceil(amount_per_hour × seconds / 3600).',
  inputSchema: { offer: offerInput, seconds: secondsInput },
  annotations: READ_ONLY,
};

/** status: a lease's state. */
export function statusTool<C extends z.ZodTypeAny>(credential: C) {
  return {
    description: 'A lease’s state, its deadline and remaining_seconds.',
    inputSchema: leaseInputs(credential),
    annotations: READ_ONLY,
  };
}

/** exec: `cap` says how the output is capped (text inside the description's parentheses). */
export function execTool<C extends z.ZodTypeAny>(credential: C, cap: string) {
  return {
    description: `Run a command in the sandbox and wait for it: exit_code, stdout, stderr (each capped ${cap}).`,
    inputSchema: { ...leaseInputs(credential), ...execInputs },
  };
}

/** write_file: the description says where the content goes (the Files API, directly or over HTTP). */
export function writeFileTool<C extends z.ZodTypeAny>(credential: C, description: string) {
  return { description, inputSchema: { ...leaseInputs(credential), ...writeFileInputs } };
}

/** read_file: `larger` says where a file over the bound is read instead. */
export function readFileTool<C extends z.ZodTypeAny>(credential: C, larger: string) {
  return {
    description:
      `Read a file from the sandbox (up to ${MCP_READ_MAX_BYTES} bytes; a directory comes as a base64 tar ` +
      `archive). Larger: ${larger}.`,
    inputSchema: { ...leaseInputs(credential), ...readFileInputs },
    annotations: READ_ONLY,
  };
}

/** stop: it ends the lease (destructive); a second call answers the same (idempotent). */
export function stopTool<C extends z.ZodTypeAny>(credential: C, description: string) {
  return {
    description,
    inputSchema: leaseInputs(credential),
    annotations: { destructiveHint: true, idempotentHint: true },
  };
}
