// Processes inside network namespaces for the network tests (this package's and the control
// plane's live egress suites): node servers that print "ready", `ip -batch` runs, and one
// killChildren() that ends every process started here. All traffic stays inside namespaces the
// tests create.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

export const execFileP = promisify(execFile);

const children = new Set<ChildProcess>();

/** Kills every process the helpers started (call from after()). */
export function killChildren(): void {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  children.clear();
}

/** Starts a TCP server inside `netns` that greets with "hello <remote address>". */
export async function serverInNetns(netns: string, port: number): Promise<ChildProcess> {
  const script = `require('net').createServer((s) => s.end('hello ' + s.remoteAddress + '\\n'))
    .listen(${port}, '0.0.0.0', () => console.log('ready'))`;
  return nodeInNetns(netns, script);
}

/** Runs a node script inside `netns` until it prints "ready" (killed by killChildren). */
export async function nodeInNetns(netns: string, script: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b));
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`server in ${netns} exited (${code}): ${err}`)));
  });
  return child;
}

/**
 * A UDP server inside `netns` answering each datagram with "echo <remote address>". Bound to one
 * `address` when the namespace has several (replies from 0.0.0.0 would leave from the primary one).
 */
export async function udpEchoInNetns(netns: string, port: number, address = '0.0.0.0'): Promise<ChildProcess> {
  const script = `const s = require('dgram').createSocket('udp4');
    s.on('message', (m, r) => s.send('echo ' + r.address, r.port, r.address));
    s.bind(${port}, '${address}', () => console.log('ready'))`;
  return nodeInNetns(netns, script);
}

/** `ip <args>` with `input` on stdin (for -batch -). */
export function execIp(args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn('ip', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err += b));
    c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ip ${args.join(' ')}: ${err}`))));
    c.stdin.end(input);
  });
}
