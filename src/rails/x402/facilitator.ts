import { x402Facilitator } from '@x402/core/facilitator';
import type {
  PaymentPayload,
  PaymentPayloadV1,
  PaymentRequirements,
  PaymentRequirementsV1,
  SettleResponse,
  VerifyResponse,
} from '@x402/core/types';
import { eip3009ABI, toFacilitatorEvmSigner } from '@x402/evm';
import { ExactEvmScheme } from '@x402/evm/exact/facilitator';
import { ExactEvmSchemeV1 } from '@x402/evm/exact/v1/facilitator';
import { createWalletClient, defineChain, http, parseAbiItem, parseEventLogs, publicActions } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { Authorization } from './x402-payload.js';
import { chainIdOf, type EvmAddress, v1NetworkOf, type X402Settings } from './x402-settings.js';

/**
 * What the x402 rail asks of a facilitator: the official `exact` scheme's verify and settle (x402
 * v2 or v1 payloads), and whether an authorization has already been executed on the chain.
 */
export interface X402Facilitator {
  verify(
    payload: PaymentPayload | PaymentPayloadV1,
    requirements: PaymentRequirements | PaymentRequirementsV1,
  ): Promise<VerifyResponse>;
  settle(
    payload: PaymentPayload | PaymentPayloadV1,
    requirements: PaymentRequirements | PaymentRequirementsV1,
  ): Promise<SettleResponse>;
  /**
   * What became of `authorization` on the operator's asset: its nonce unused; or used, with `tx`
   * the transaction that executed it paying its value to the operator (absent: the nonce went to
   * another transfer the payer signed). How a settlement whose answer was lost (a crash, a
   * timeout, a record that failed) is found again — also from the settlement journal, which keeps
   * only these fields of it (never the signature).
   */
  executionOf(authorization: AuthorizationRef): Promise<Execution>;
}

/**
 * What names an authorization's execution on the chain: its payer and nonce (the token's
 * `authorizationState`), and its value (the transfer to the operator that executed it). Public
 * data: without the payer's signature it moves nothing.
 */
export type AuthorizationRef = Pick<Authorization, 'from' | 'nonce' | 'value'>;

/** An authorization's nonce as the chain has it (X402Facilitator.executionOf). */
export type Execution = { used: false } | { used: true; tx?: `0x${string}` };

/** How far back (blocks) `executionOf` looks for the authorization's transaction. */
const LOOKBACK_BLOCKS = 10_000n;

const AUTHORIZATION_USED = parseAbiItem(
  'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)',
);
const TRANSFER = parseAbiItem('event Transfer(address indexed from, address indexed to, uint256 value)');

/**
 * The node's own facilitator, in process: the official `@x402/core` facilitator with `@x402/evm`'s
 * exact scheme (EIP-3009 verify and settle; v1 too where the chain has a v1 name), reaching the
 * chain at `rpcUrl` through viem and paying gas from `privateKey`'s account. The key is held
 * here only; nothing of it is logged.
 */
export function createFacilitator(options: {
  settings: X402Settings;
  rpcUrl: string;
  privateKey: `0x${string}`;
  /** Longest wait for a settlement's receipt (ms). */
  confirmationTimeoutMs?: number;
}): X402Facilitator {
  const { settings } = options;
  const chainId = chainIdOf(settings.network);
  const chain = defineChain({
    id: chainId,
    name: settings.network,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [options.rpcUrl] } },
  });
  const account = privateKeyToAccount(options.privateKey);
  const client = createWalletClient({ account, chain, transport: http(options.rpcUrl) }).extend(
    publicActions,
  );
  const signer = toFacilitatorEvmSigner(
    { ...(client as unknown as Parameters<typeof toFacilitatorEvmSigner>[0]), address: account.address },
    { confirmationTimeoutMs: options.confirmationTimeoutMs ?? 60_000 },
  );
  const facilitator = new x402Facilitator().register(settings.network, new ExactEvmScheme(signer));
  const v1 = v1NetworkOf(settings.network);
  if (v1) facilitator.registerV1(v1 as PaymentRequirementsV1['network'], new ExactEvmSchemeV1(signer));

  return {
    verify: (payload, requirements) =>
      facilitator.verify(payload as PaymentPayload, requirements as PaymentRequirements),
    settle: (payload, requirements) =>
      facilitator.settle(payload as PaymentPayload, requirements as PaymentRequirements),
    async executionOf(authorization) {
      const from = authorization.from as EvmAddress;
      const nonce = authorization.nonce as `0x${string}`;
      const used = await client.readContract({
        address: settings.asset,
        abi: eip3009ABI,
        functionName: 'authorizationState',
        args: [from, nonce],
      });
      if (used !== true) return { used: false };
      // Not viem's cached block number (seconds old): the transfer may be in the newest block.
      const latest = await client.getBlockNumber({ cacheTime: 0 });
      const logs = await client.getLogs({
        address: settings.asset,
        event: AUTHORIZATION_USED,
        args: { authorizer: from, nonce },
        fromBlock: latest > LOOKBACK_BLOCKS ? latest - LOOKBACK_BLOCKS : 0n,
        toBlock: 'latest',
      });
      // The nonce names the authorization only together with its signed transfer: the payer may
      // have signed another with the same nonce. Only a transfer of this value to the operator counts.
      // Matched here too, not only by the node's topic filter: not every node applies it.
      const ours = logs.filter(
        (log) =>
          log.args.authorizer?.toLowerCase() === from.toLowerCase() &&
          log.args.nonce?.toLowerCase() === nonce.toLowerCase(),
      );
      for (const log of ours.slice(0, 8)) {
        if (!log.transactionHash) continue;
        const receipt = await client.getTransactionReceipt({ hash: log.transactionHash });
        if (receipt.status !== 'success') continue;
        const transfers = parseEventLogs({ abi: [TRANSFER], logs: receipt.logs });
        const paid = transfers.some(
          (t) =>
            t.address.toLowerCase() === settings.asset.toLowerCase() &&
            t.args.from.toLowerCase() === from.toLowerCase() &&
            t.args.to.toLowerCase() === settings.payTo.toLowerCase() &&
            t.args.value === BigInt(authorization.value),
        );
        if (paid) return { used: true, tx: log.transactionHash };
      }
      return { used: true };
    },
  };
}
