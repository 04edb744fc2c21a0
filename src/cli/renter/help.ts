/** `--help` of every renter command, each with examples. */
const COMMON = `
Common options:
  --url URL      the node (default http://127.0.0.1:8402, env ALACARTE_URL)
  --json         machine-readable output on stdout
  -h, --help     this help
Wallet and lease credentials live in $ALACARTE_HOME (default ~/.local/share/alacarte).`;

export const HELP: Record<string, string> = {
  renter: `Renting (the node runs elsewhere or in another terminal: alacarte serve):
  alacarte offers                          what can be rented, at what price
  alacarte quote --offer ID --for 2h       the price of a lease
  alacarte wallet topup N                  buy N sat of ecash over Lightning
  alacarte wallet balance|send|receive|withdraw|restore|seed
  alacarte rent --offer ID --for 2h        rent a sandbox, paid from the wallet
  alacarte leases                          the leases rented from this machine
  alacarte exec ID -- CMD ...              run a command in a sandbox
  alacarte shell ID                        an interactive shell in a sandbox
  alacarte extend ID --for 1h              buy more time
  alacarte stop ID                         stop early; unused time is refunded
Run any command with --help for its options and examples.`,
  offers: `Usage: alacarte offers [--url URL] [--json]

Lists the offers of the node (size, price per hour, how many are free), the images, and the
mints whose ecash it accepts.

Examples:
  alacarte offers
  alacarte offers --json | jq '.offers[].id'
${COMMON}`,
  quote: `Usage: alacarte quote --offer ID --for DURATION [--url URL] [--json]

Shows what a lease of that offer costs for that long. DURATION: 600s, 90m, 2h, 1d, 1h30m.

Examples:
  alacarte quote --offer small --for 2h
  alacarte quote --offer large --for 1d --json
${COMMON}`,
  rent: `Usage: alacarte rent --offer ID --for DURATION [--image IMAGE] [--port PORT]... [--env K=V]...
                     [--max N] [--url URL] [--json] [-- COMMAND ...]

Rents a sandbox and pays for it from the wallet: exactly the price when the wallet can split its
ecash to it, otherwise a little more, with the change coming straight back. The lease's
credential is kept in $ALACARTE_HOME/leases.json.

Options:
  --offer ID         one of: alacarte offers
  --for DURATION     600s, 90m, 2h, 1d, 1h30m
  --image IMAGE      default busybox
  --port PORT        expose a port of the sandbox through the node (repeatable)
  --env K=V          environment variable (repeatable)
  --max N            pay at most N (sat), whatever the node asks
  -- COMMAND ...     the sandbox's main command (default: the image's)

Examples:
  alacarte rent --offer small --for 2h
  alacarte rent --offer small --for 90m --port 8080 -- httpd -f -p 8080
  ID=$(alacarte rent --offer small --for 10m --json | jq -r .id)
${COMMON}`,
  leases: `Usage: alacarte leases [--url URL] [--json]

Lists the leases rented from this machine, with their state and time left.

Examples:
  alacarte leases
  alacarte leases --json
${COMMON}`,
  exec: `Usage: alacarte exec ID [--timeout SECONDS] [--stdin | --no-stdin] [--json] -- COMMAND [ARG ...]

Runs a command in the sandbox and writes its output; exits with the command's exit code.
Bytes pass through unchanged both ways. Standard input that is not a terminal (a pipe, a file;
at most 1 MiB) goes to the command; --stdin reads a terminal too, --no-stdin reads nothing.

Examples:
  alacarte exec lse_123 -- uname -a
  alacarte exec lse_123 -- sh -c 'echo hi > /tmp/x; cat /tmp/x'
  echo data | alacarte exec lse_123 -- wc -c
  alacarte exec lse_123 -- gzip -c /etc/passwd > passwd.gz
${COMMON}`,
  shell: `Usage: alacarte shell ID [--url URL]

Opens an interactive shell in the sandbox (raw terminal, window size follows yours). Leave it
with 'exit' or Ctrl-D.

Examples:
  alacarte shell lse_123
${COMMON}`,
  extend: `Usage: alacarte extend ID --for DURATION [--max N] [--url URL] [--json]

Buys more time for a lease, paid from the wallet. Anyone who knows a lease's id may extend it.

Examples:
  alacarte extend lse_123 --for 1h
${COMMON}`,
  stop: `Usage: alacarte stop ID [--url URL] [--json]

Stops a lease now; the unused whole seconds come back into the wallet as ecash.

Examples:
  alacarte stop lse_123
${COMMON}`,
  wallet: `Usage: alacarte wallet COMMAND

  topup N [--mint URL] [--no-wait]   buy N sat: prints a Lightning invoice and its QR code, waits, mints
  balance                            ecash in the wallet, per mint
  send N [--mint URL]                takes N sat out as a Cashu token (printed)
  receive TOKEN|-                    redeems a Cashu token ('-' reads it from stdin)
  withdraw BOLT11 [--mint URL]       pays a Lightning invoice from the wallet (melt)
  restore [--seed-phrase-stdin]      rebuilds the wallet from its seed phrase (NUT-09)
  seed                               shows the seed phrase (write it down; whoever has it owns the ecash)

Examples:
  alacarte wallet topup 1000
  alacarte wallet balance --json
  alacarte wallet send 21 > token.txt && alacarte wallet receive - < token.txt
  echo "word1 word2 ... word12" | alacarte wallet restore --seed-phrase-stdin
${COMMON}`,
};
HELP['wallet topup'] = `Usage: alacarte wallet topup N [--mint URL] [--no-wait] [--no-qr] [--url URL] [--json]

Asks the node's mint (or --mint) for a Lightning invoice of N sat, prints it with a QR code,
waits until it is paid and mints the ecash into the wallet. With --no-wait it prints the
invoice and returns; the next wallet command mints once it is paid.

Examples:
  alacarte wallet topup 1000
  alacarte wallet topup 500 --json
${COMMON}`;
HELP['wallet balance'] = `Usage: alacarte wallet balance [--url URL] [--json]

Shows the ecash in the wallet, per mint, after settling anything an interrupted command left.

Examples:
  alacarte wallet balance
  alacarte wallet balance --json | jq .balance
${COMMON}`;
HELP['wallet send'] = `Usage: alacarte wallet send N [--mint URL] [--url URL] [--json]

Takes exactly N sat out of the wallet as a Cashu token and prints it (anyone holding it can
redeem it).

Examples:
  alacarte wallet send 21
  alacarte wallet send 21 --json | jq -r .token
${COMMON}`;
HELP['wallet receive'] = `Usage: alacarte wallet receive TOKEN|- [--url URL] [--json]

Redeems a Cashu token into the wallet ('-' reads it from stdin).

Examples:
  alacarte wallet receive cashuB...
  alacarte wallet receive - < token.txt
${COMMON}`;
HELP['wallet withdraw'] = `Usage: alacarte wallet withdraw BOLT11 [--mint URL] [--url URL] [--json]

Pays a Lightning invoice with ecash from the wallet (a NUT-05 melt); unused fee reserve comes back.

Examples:
  alacarte wallet withdraw lnbc10u1p...
${COMMON}`;
HELP['wallet restore'] =
  `Usage: alacarte wallet restore [--seed-phrase-stdin] [--mint URL] [--url URL] [--json]

Asks the mint (NUT-09) for every proof this wallet's seed could have created and adds the unspent
ones. With --seed-phrase-stdin, reads a 12/24-word seed phrase from stdin and rebuilds an empty
wallet from it (e.g. on a new machine).

Examples:
  alacarte wallet restore
  alacarte wallet restore --seed-phrase-stdin < phrase.txt
${COMMON}`;
HELP['wallet seed'] = `Usage: alacarte wallet seed

Prints the wallet's seed phrase. Whoever has it owns the wallet's ecash: keep it offline.

Examples:
  alacarte wallet seed
${COMMON}`;
