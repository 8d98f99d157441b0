// The server's contexts: named ones created by POST /contexts and a default per language, created
// on first use (python and javascript at start), plus the sandbox's env vars read from envd.
import { statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Context } from './context.js';
import type { Language } from './languages.js';
import { BashContext, NodeContext } from './process-context.js';
import { PythonContext } from './python-context.js';

export interface ContextsOptions {
  /** Where kernel_startup.py and node_kernel.cjs are (the bundle's code-interpreter folder). */
  kernelDir: string;
  cwd: string;
  envdPort: number;
}

export class Contexts {
  readonly all = new Map<string, Context>();
  private readonly defaults = new Map<Language, Promise<Context>>();
  private sandboxEnvs: Record<string, string> | undefined;

  constructor(private readonly opts: ContextsOptions) {}

  /** Starts a new context's kernel; rejects when cwd is not a directory or the kernel fails. */
  async create(language: Language, cwd = this.opts.cwd): Promise<Context> {
    if (!statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`cwd ${cwd} is not a directory`);
    const ctx =
      language === 'python'
        ? new PythonContext(cwd, join(this.opts.kernelDir, 'kernel_startup.py'))
        : language === 'bash'
          ? new BashContext(cwd)
          : new NodeContext(cwd, language, join(this.opts.kernelDir, 'node_kernel.cjs'));
    await ctx.start();
    this.all.set(ctx.id, ctx);
    return ctx;
  }

  defaultFor(language: Language): Promise<Context> {
    let ctx = this.defaults.get(language);
    if (!ctx) {
      ctx = this.create(language);
      this.defaults.set(language, ctx);
      // A failed start is tried again by the next request.
      ctx.catch(() => this.defaults.delete(language));
    }
    return ctx;
  }

  async remove(id: string): Promise<boolean> {
    const ctx = this.all.get(id);
    if (!ctx) return false;
    this.all.delete(id);
    for (const [language, d] of this.defaults)
      if ((await d.catch(() => undefined)) === ctx) this.defaults.delete(language);
    await ctx.shutdown();
    return true;
  }

  /**
   * The capsule's env vars from envd (set at create or connect), read once: kernels started before
   * the capsule was handed out (a warm pool) do not have them in their own environment.
   */
  async sandboxEnv(token: string | undefined): Promise<Record<string, string>> {
    if (this.sandboxEnvs) return this.sandboxEnvs;
    try {
      const data = await getJson(`http://127.0.0.1:${this.opts.envdPort}/envs`, token);
      const envs: Record<string, string> = {};
      if (data && typeof data === 'object' && !Array.isArray(data))
        for (const [k, v] of Object.entries(data)) envs[k] = String(v);
      this.sandboxEnvs = envs;
      return envs;
    } catch (err) {
      // envd refused (token) or is restarting: try again next time.
      process.stderr.write(
        `${JSON.stringify({ level: 'warn', msg: 'could not read the capsule environment from envd', err: String(err) })}\n`,
      );
      return {};
    }
  }
}

function getJson(url: string, token: string | undefined): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: token ? { 'X-Access-Token': token } : {}, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`envd answered ${res.statusCode}`));
        try {
          const body = Buffer.concat(chunks).toString();
          resolve(body ? JSON.parse(body) : {});
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('envd did not answer in 5 s')));
    req.on('error', reject);
    req.end();
  });
}
