// WRENN_NAME_PREFIX: what an agent names on the machine (capsule namespaces, veths, chains, cgroup
// parent) so several agents share one machine; anything but 1-4 lower-case letters stops the agent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { namePrefixFromEnv } from '../src/local-providers.js';

test('a prefix names namespaces, veths, chains and the cgroup parent; unset keeps the defaults', () => {
  assert.equal(namePrefixFromEnv(undefined), undefined);
  assert.equal(namePrefixFromEnv(''), undefined);
  assert.deepEqual(namePrefixFromEnv('qab'), {
    names: { netnsPrefix: 'qab-', ifPrefix: 'qab', chainPrefix: 'QAB' },
    cgroupParent: 'wrenn-qab',
  });
});

test('anything but 1-4 lower-case letters is refused with the rule', () => {
  for (const bad of ['abcde', 'AB', 'a-b', 'a1', '../x', 'a b', 'é']) {
    assert.throws(() => namePrefixFromEnv(bad), /WRENN_NAME_PREFIX=".*" must be 1-4 lower-case letters/, bad);
  }
});
