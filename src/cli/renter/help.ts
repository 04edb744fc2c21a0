/** `--help` of every renter command, each with examples. */
const COMMON = `
Common options:
  --url URL      the node (default http://127.0.0.1:8402, env ALACARTE_URL); a lease
                 already in the list goes to the node that sold it unless --url is given
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
  alacarte leases [--prune]                the leases rented from this machine (--prune: drop ended ones)
  alacarte leases add ID --credential-file F   use a lease rented with curl (credential from F or stdin)
  alacarte exec ID -- CMD ...              run a command in a sandbox
  alacarte cp LOCAL ID:/path               copy a file or directory into a sandbox (and back)
  alacarte shell ID                        an interactive shell in a sandbox
  alacarte extend ID --for 1h              buy more time
  alacarte stop ID                         stop early; unused time is refunded
Run any command with --help for its options and examples. The node is --url URL or env
ALACARTE_URL (default http://127.0.0.1:8402: give it when serve has another --port or host).`,
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
                     [--ssh-key FILE.pub]... [--max N] [--url URL] [--json] [-- COMMAND ...]

Rents a sandbox and pays for it from the wallet: exactly the price when the wallet can split its
ecash to it, otherwise a little more, with the change coming straight back. The lease's
credential is kept in $ALACARTE_HOME/leases.json.

Options:
  --offer ID         one of: alacarte offers
  --for DURATION     600s, 90m, 2h, 1d, 1h30m
  --image IMAGE      default busybox
  --port PORT        publish a port of the sandbox at a URL on the node, for anyone who has
                     the URL (repeatable); shown by rent and leases
  --env K=V          environment variable (repeatable)
  --ssh-key FILE     a public key that may log in over SSH (repeatable, at most 8); default:
                     whichever of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub exist
  --max N            pay at most N (sat), whatever the node asks
  -- COMMAND ...     the sandbox's main command (default: the image's)

Examples:
  alacarte rent --offer small --for 2h
  alacarte rent --offer small --for 90m --port 8080 -- httpd -f -p 8080
  alacarte rent --offer small --for 1h --ssh-key ~/.ssh/id_ed25519.pub   # then: ssh -p 2222 lse_…@host
  ID=$(alacarte rent --offer small --for 10m --json | jq -r .id)
${COMMON}`,
  leases: `Usage: alacarte leases [--prune] [--url URL] [--json]
       alacarte leases add ID [--credential-file FILE|-] [--url URL] [--json]

Lists the leases rented from this machine (or added to it), with their state as the node gives
it and their time left. A lease the node stopped before its time (its sandbox died) has its
refund collected into the wallet first (any wallet command does that too).

  --prune    removes from the list the leases the node has confirmed ended (expired, stopped,
             failed); one whose refund is still to be collected stays until it is
  add ID     adds a lease rented some other way (curl, another machine) once the node at --url
             accepts its credential, so that exec, cp, shell, extend and stop work with it. The
             credential (the "token" of the lease answer, or that whole JSON answer) is read from
             --credential-file FILE, or standard input (- or a pipe): never give it as an
             argument, ps shows those to every user of the machine

Examples:
  alacarte leases
  alacarte leases --prune
  alacarte leases --json | jq -r '.leases[] | select(.state == "running") | .id'
  curl -s -H "X-Cashu: $TOKEN" -H 'content-type: application/json' \\
       -d '{"offer":"small","seconds":3600,"image":"busybox"}' $URL/v1/leases > lease.json
  alacarte leases add "$(jq -r .id lease.json)" --credential-file lease.json
  jq -r .token lease.json | alacarte leases add lse_0k2…
${COMMON}`,
  exec: `Usage: alacarte exec ID [--timeout SECONDS] [--stdin | --no-stdin | --background] [--json] -- COMMAND [ARG ...]

Runs a command in the sandbox and writes its output; exits with the command's exit code.
The command is killed after --timeout SECONDS (default 30, at most 3600; exit code 137): give
long jobs more, or start them with --background. Bytes pass through unchanged both ways. Standard input that is not a terminal (a pipe, a file;
at most 1 MiB) goes to the command; --stdin reads a terminal too, --no-stdin reads nothing.
--background starts it detached and returns at once, printing its pid; it runs until it exits or
the lease ends, its output discarded (redirect it inside: sh -c 'cmd > /tmp/log 2>&1').
What a command starts in the background itself (cmd &) outlives the exec too.

Examples:
  alacarte exec lse_123 -- uname -a
  alacarte exec lse_123 -- sh -c 'echo hi > /tmp/x; cat /tmp/x'
  echo data | alacarte exec lse_123 -- wc -c
  alacarte exec lse_123 -- gzip -c /etc/passwd > passwd.gz
  alacarte exec lse_123 --background -- httpd -f -p 8080
${COMMON}`,
  cp: `Usage: alacarte cp LOCAL ID:/path [--url URL] [--json]
       alacarte cp ID:/path LOCAL

Copies a file or a directory (with everything in it, as scp -r does) into a lease's sandbox or
out of it, streamed. A destination ending in / (or an existing local directory, or for a file an
existing directory in the sandbox) receives the source under its own name. A relative path in the sandbox is under /root. LOCAL may be - for
standard input or output (a file only). Files in the sandbox belong to its root; a file keeps its
permission bits. Directories travel as tar archives (this machine's tar must be installed). A
local name with a colon in it is written ./name.

Examples:
  alacarte cp data.csv lse_123:/root/
  alacarte cp ./site lse_123:/srv/www
  alacarte cp lse_123:/root/results.json .
  alacarte cp lse_123:/var/log ./logs
  alacarte exec lse_123 -- sh -c 'tar -czf /tmp/out.tgz /work' && alacarte cp lse_123:/tmp/out.tgz -
${COMMON}`,
  shell: `Usage: alacarte shell ID [--url URL]

Opens an interactive shell in the sandbox (raw terminal, window size follows yours). Leave it
with 'exit' or Ctrl-D; the command exits with the shell's status. Input piped in is typed into
the shell once it reads (every line runs, once, in order; prompts and echo are shown) and ends
it as Ctrl-D and 'exit' do; for a script's output alone, use alacarte exec ID -- sh -s < script.sh.

Examples:
  alacarte shell lse_123
  printf 'cd /tmp\nls\n' | alacarte shell lse_123
${COMMON}`,
  extend: `Usage: alacarte extend ID --for DURATION [--max N] [--url URL] [--json]

Buys more time for a lease, paid from the wallet. Anyone who knows a lease's id may extend it.

Examples:
  alacarte extend lse_123 --for 1h
${COMMON}`,
  stop: `Usage: alacarte stop ID [--url URL] [--json]

Stops a lease now; the unused whole seconds come back into the wallet as ecash. A lease that
has already ended (it expired, failed, or was stopped before) is not an error: stop says so with
the node's words, refunds nothing more and exits 0: the lease is not running, as asked. Exit 1:
the node refused (no valid credential, say) or could not be reached; 2: a command-line mistake.

Examples:
  alacarte stop lse_123
${COMMON}`,
  wallet: `Usage: alacarte wallet COMMAND

  topup N [--mint URL] [--no-wait]   buy N sat: prints a Lightning invoice (and on a terminal its QR code), waits, mints
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
HELP['leases add'] = HELP.leases as string;
HELP['wallet topup'] = `Usage: alacarte wallet topup N [--mint URL] [--no-wait] [--no-qr] [--url URL] [--json]

Asks the node's mint (or --mint) for a Lightning invoice of N sat, prints it (with a QR code
when standard output is a terminal; --no-qr leaves it out there too), waits until it is paid
and mints the ecash into the wallet. With --no-wait it prints the invoice and returns; the next
wallet command mints once it is paid.

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
Prints the payment's preimage (the proof of payment) when the mint reports it: an L402 402's
invoice paid this way is redeemed with Authorization: L402 <macaroon>:<preimage>.

Examples:
  alacarte wallet withdraw lnbc10u1p...
  alacarte wallet withdraw lnbc10u1p... --json | jq -r .preimage
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
