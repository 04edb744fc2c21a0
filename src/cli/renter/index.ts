import { RENTER_COMMANDS, runCommand } from './commands.js';
import { describeError, processIo } from './ui.js';

export { HELP as RENTER_HELP } from './help.js';

/**
 * The renter side of the `alacarte` command. Resolves with the exit code, or undefined when
 * `command` is not one of its commands. Errors become one line on stderr with a hint.
 */
export async function runRenterCommand(command: string, args: string[]): Promise<number | undefined> {
  if (!RENTER_COMMANDS.has(command)) return undefined;
  const io = processIo();
  try {
    return await runCommand(command, args, io);
  } catch (err) {
    const name =
      (command === 'wallet' && args[0] && !args[0].startsWith('-')) ||
      (command === 'leases' && args[0] === 'add')
        ? `${command} ${args[0]}`
        : command;
    const { line, hint, code } = describeError(err, name);
    io.stderr.write(`${line}\n${hint ? `hint: ${hint}\n` : ''}`);
    return code;
  }
}
