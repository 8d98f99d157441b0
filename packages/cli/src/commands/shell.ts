// `wrenn shell <id>`: an interactive terminal in a capsule. The local terminal goes raw, every
// keystroke is forwarded, the remote size follows the window (SIGWINCH); the shell ending (Ctrl-D
// at its prompt, or `exit`) ends the command with the shell's exit code.
import { Capsule } from '@wrenn/sdk';
import { CliError, connection, run } from './support.js';

export const shell = (id: string, o: { cmd?: string }) =>
  run(async () => {
    const cap = await Capsule.connect(id, { ...connection(), autoResume: false });
    if (cap.info.state !== 'running')
      throw new CliError(`capsule ${id} is ${cap.info.state}; resume it with \`wrenn capsule resume ${id}\``);
    const out = process.stdout;
    const size = () => ({ cols: out.columns || 80, rows: out.rows || 24 });
    const pty = await cap.pty.create({ ...size(), ...(o.cmd ? { cmd: o.cmd } : {}), onData: (d) => out.write(d) });
    const stdin = process.stdin;
    const wasRaw = stdin.isTTY ? stdin.isRaw : false;
    if (stdin.isTTY) stdin.setRawMode(true);
    stdin.resume();
    const onKeys = (d: Buffer) => void pty.sendInput(new Uint8Array(d)).catch(() => undefined);
    const onResize = () => void pty.resize(size()).catch(() => undefined);
    stdin.on('data', onKeys);
    process.on('SIGWINCH', onResize);
    let code = 0;
    try {
      code = (await pty.wait()).exitCode;
    } catch (err) {
      // The connection ended without an exit code (capsule destroyed, server gone).
      process.stderr.write(`\r\nwrenn: ${(err as Error).message}\r\n`);
      code = 1;
    } finally {
      stdin.off('data', onKeys);
      process.off('SIGWINCH', onResize);
      if (stdin.isTTY) stdin.setRawMode(wasRaw);
      stdin.pause();
    }
    await new Promise<void>((r) => out.write('', () => r()));
    process.exit(code < 0 ? 1 : code);
  });
