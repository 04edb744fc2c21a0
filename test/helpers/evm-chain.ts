import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHardhatRuntimeEnvironment } from 'hardhat/hre';
import solc from 'solc';
import {
  type Abi,
  createWalletClient,
  defineChain,
  type Hex,
  http,
  publicActions,
  type WalletClient,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/**
 * Hardhat's well-known development accounts (public keys of its default mnemonic: test money on a
 * chain in this process only): #0 deploys the token, #1 is the node's facilitator (pays gas).
 */
const DEPLOYER_KEY: Hex = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
export const FACILITATOR_KEY: Hex = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';

/** Base Sepolia's chain id: the chain has a v1 name too (`base-sepolia`), so both x402 versions pay. */
export const TEST_CHAIN_ID = 84532;
/**
 * Where USDC lives on Base Sepolia: the token is placed there on the test chain, so that a stock
 * x402 client, which by default pays only the assets it knows (up to $1 a payment), pays it with no
 * configuration at all.
 */
export const TEST_USDC: Hex = '0x036CbD53842c5426634e7929541eC2318f3dCF7e';
/** Its EIP-712 domain there. */
export const TEST_USDC_DOMAIN = { name: 'USDC', version: '2' } as const;

export interface TestChain {
  rpcUrl: string;
  network: `eip155:${number}`;
  /** The USDC-like EIP-3009 token (6 decimals, EIP-712 domain "USDC", "2") at TEST_USDC. */
  usdc: Hex;
  /** The operator's address (payTo): no key, it only receives. */
  payTo: Hex;
  /** A fresh payer holding `units` of the token (smallest units). */
  payer(units: bigint): Promise<{ key: Hex; address: Hex }>;
  balanceOf(address: Hex): Promise<bigint>;
  /** Whether `nonce` of `authorizer` has been used on the token. */
  authorizationState(authorizer: Hex, nonce: Hex): Promise<boolean>;
  /**
   * Whether each transaction is mined as it comes (the default). Off, transactions wait in the
   * mempool until mine(): a settlement sent whose receipt does not come in time.
   */
  automine(on: boolean): Promise<void>;
  /** Mines one block with whatever waits in the mempool. */
  mine(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The node's `x402` configuration (config-file keys) for `chain`: its network, RPC, token and payee,
 * `atomicUnits` of the token per sat, and the facilitator's key (FACILITATOR_KEY) written to a file
 * of its own, which `dispose()` removes; `extra` adds keys (how long a settlement may wait for its
 * receipt, in ms).
 */
export function x402ConfigFor(
  chain: TestChain,
  atomicUnits: bigint,
  extra: { confirmationTimeoutMs?: number } = {},
): {
  x402: {
    network: string;
    rpcUrl: string;
    asset: string;
    assetName: string;
    payTo: string;
    rate: { atomicUnits: number };
    facilitatorKeyPath: string;
    confirmationTimeoutMs?: number;
  };
  dispose(): void;
} {
  const keyDir = mkdtempSync(join(tmpdir(), 'alacarte-x402-key-'));
  const keyPath = join(keyDir, 'facilitator.key');
  writeFileSync(keyPath, FACILITATOR_KEY, { mode: 0o600 });
  return {
    x402: {
      network: chain.network,
      rpcUrl: chain.rpcUrl,
      asset: chain.usdc,
      assetName: 'USDC',
      payTo: chain.payTo,
      rate: { atomicUnits: Number(atomicUnits) },
      facilitatorKeyPath: keyPath,
      ...extra,
    },
    dispose: () => rmSync(keyDir, { recursive: true, force: true }),
  };
}

let compiled: { abi: Abi; bytecode: Hex } | undefined;

/** TestUsdc.sol compiled by solc-js, OpenZeppelin's sources read from node_modules. */
function compileToken(): { abi: Abi; bytecode: Hex } {
  if (compiled) return compiled;
  const here = dirname(fileURLToPath(import.meta.url));
  const source = readFileSync(join(here, '../fixtures/evm/TestUsdc.sol'), 'utf8');
  const require = createRequire(import.meta.url);
  const input = {
    language: 'Solidity',
    sources: { 'TestUsdc.sol': { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const findImports = (path: string) => {
    try {
      return { contents: readFileSync(require.resolve(path), 'utf8') };
    } catch {
      return { error: `not found: ${path}` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports })) as {
    errors?: Array<{ severity: string; formattedMessage: string }>;
    contracts: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
  };
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const token = output.contracts['TestUsdc.sol']?.TestUsdc;
  if (!token) throw new Error('TestUsdc was not compiled');
  compiled = { abi: token.abi, bytecode: `0x${token.evm.bytecode.object}` };
  return compiled;
}

/**
 * An EVM chain in this process (Hardhat 3's EDR, served over JSON-RPC on loopback), with a
 * USDC-like EIP-3009 token deployed on it: what the x402 rail settles on in tests.
 */
export async function startTestChain(): Promise<TestChain> {
  const token = compileToken();
  const hre = await createHardhatRuntimeEnvironment(
    { networks: { x402test: { type: 'edr-simulated', chainId: TEST_CHAIN_ID } } },
    {},
    process.cwd(),
  );
  const server = await hre.network.createServer('x402test', '127.0.0.1', 0);
  const { port } = await server.listen();
  const rpcUrl = `http://127.0.0.1:${port}`;
  const chain = defineChain({
    id: TEST_CHAIN_ID,
    name: 'x402 test chain',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const deployer = createWalletClient({
    account: privateKeyToAccount(DEPLOYER_KEY),
    chain,
    transport: http(rpcUrl),
  }).extend(publicActions);
  const deployTx = await deployer.deployContract({ abi: token.abi, bytecode: token.bytecode });
  const receipt = await deployer.waitForTransactionReceipt({ hash: deployTx });
  const deployed = receipt.contractAddress;
  if (!deployed) throw new Error('the token was not deployed');
  // The same code at USDC's Base Sepolia address (its constructor set no storage that matters).
  const code = await deployer.getCode({ address: deployed });
  await deployer.request({ method: 'hardhat_setCode', params: [TEST_USDC, code] } as never);
  const usdc = TEST_USDC;
  const mint = async (to: Hex, units: bigint) => {
    const hash = await (deployer as WalletClient).writeContract({
      address: usdc,
      abi: token.abi,
      functionName: 'mint',
      args: [to, units],
      account: deployer.account,
      chain,
    });
    await deployer.waitForTransactionReceipt({ hash });
  };
  return {
    rpcUrl,
    network: `eip155:${TEST_CHAIN_ID}`,
    usdc,
    payTo: privateKeyToAccount(generatePrivateKey()).address,
    async payer(units) {
      const key = generatePrivateKey();
      const address = privateKeyToAccount(key).address;
      if (units > 0n) await mint(address, units);
      return { key, address };
    },
    async balanceOf(address) {
      return (await deployer.readContract({
        address: usdc,
        abi: token.abi,
        functionName: 'balanceOf',
        args: [address],
      })) as bigint;
    },
    async authorizationState(authorizer, nonce) {
      return (await deployer.readContract({
        address: usdc,
        abi: token.abi,
        functionName: 'authorizationState',
        args: [authorizer, nonce],
      })) as boolean;
    },
    async automine(on) {
      await deployer.request({ method: 'evm_setAutomine', params: [on] } as never);
    },
    async mine() {
      await deployer.request({ method: 'evm_mine', params: [] } as never);
    },
    async close() {
      await server.close();
    },
  };
}
