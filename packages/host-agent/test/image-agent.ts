// What the agent's image-template tests share (image-template, image-gc, security/image-capsule):
// Debian's docker-registry on a loopback port with the images a test pushes, an agent on a fresh
// data dir, both stopped afterwards with a check that no capsule, netns or mount is left, and the
// calls those tests make (a capsule of a template, a shell command in it, EnsureImageTemplate).
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import type { ImageTemplateResult } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import { registrySkip, startRegistry, type TestRegistry } from '../src/testing/oci.js';
import { leftovers, newDataDir, startTestAgent, type TestAgent, teardown, text } from './agent-helpers.js';

export { registrySkip };

export interface ImageAgent {
  readonly dataDir: string;
  readonly reg: TestRegistry;
  readonly agent: TestAgent;
  /** Capsules the test made (the end checks that none is left). */
  readonly created: string[];
  capsuleOf(template: string, timeoutSec?: number): Promise<string>;
  sh(id: string, script: string, user?: string): Promise<{ code: number; out: string; err: string }>;
  /** EnsureImageTemplate to its result, with the progress lines on the way. */
  ensure(
    image: string,
    creds?: { username?: string; password?: string },
  ): Promise<{ lines: string[]; result: ImageTemplateResult }>;
}

/** Registers the hooks (call at module level); `push` fills the registry before the agent starts. */
export function imageAgent(push: (reg: TestRegistry) => Promise<void>): ImageAgent {
  let dataDir = '';
  let reg: TestRegistry | undefined;
  let t: TestAgent | undefined;
  const created: string[] = [];
  before(async () => {
    if (registrySkip) return;
    dataDir = newDataDir();
    reg = await startRegistry();
    await push(reg);
    t = await startTestAgent(dataDir);
  });
  after(async () => {
    await teardown(t, dataDir);
    await reg?.stop();
    if (registrySkip) return;
    const left = leftovers(dataDir, created);
    assert.deepEqual(left, [], `resources left behind: ${left.join(', ')}`);
  });
  const fx: ImageAgent = {
    get dataDir() {
      return dataDir;
    },
    get reg() {
      if (!reg) throw new Error('registry not started');
      return reg;
    },
    get agent() {
      if (!t) throw new Error('agent not started');
      return t;
    },
    created,
    async capsuleOf(template, timeoutSec = 120) {
      const { capsule } = await fx.agent.client.createCapsule({ template, timeoutSec });
      assert.ok(capsule);
      created.push(capsule.id);
      return capsule.id;
    },
    async sh(id, script, user = 'root') {
      const r = await fx.agent.client.exec({ capsuleId: id, cmd: '/bin/sh', args: ['-c', script], user });
      return { code: r.exitCode, out: text(r.stdout), err: text(r.stderr) };
    },
    async ensure(image, creds = {}) {
      const lines: string[] = [];
      for await (const ev of fx.agent.client.ensureImageTemplate({ image, ...creds })) {
        if (ev.event.case === 'progress') lines.push(ev.event.value);
        else if (ev.event.case === 'result') return { lines, result: ev.event.value };
      }
      throw new Error(`EnsureImageTemplate ${image} ended without a result`);
    },
  };
  return fx;
}
