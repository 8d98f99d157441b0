// The agent's Connect edge: each error class the manager, runtimes and template store throw leaves
// the service (withErrorMapping) with the Connect code of its domain kind, and comes back from that
// code as the kind's class (what the control plane's agent client raises). The template store's
// refusals are typed, so no caller has to read their message.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  AlreadyExistsError,
  type DomainError,
  FailedPreconditionError,
  fromConnectError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from '@wrenn/protocol';
import {
  CapsuleNotFoundError,
  InvalidArgumentError as ManagerInvalidArgumentError,
  TemplateInUseError,
  TemplateNotFoundError,
} from '../src/manager/errors.js';
import { IllegalStateError } from '../src/manager/state-machine.js';
import { TemplateStore } from '../src/rootfs/template-store.js';
import { HostCapacityError } from '../src/runtimes/capacity-error.js';
import { withErrorMapping } from '../src/service/errors.js';

const cases: [Error, Code, abstract new (...a: never[]) => DomainError][] = [
  [new CapsuleNotFoundError('cl-x'), Code.NotFound, NotFoundError],
  [new TemplateNotFoundError('nope'), Code.NotFound, NotFoundError],
  [new ManagerInvalidArgumentError('vcpus must be 1-8'), Code.InvalidArgument, InvalidArgumentError],
  [new AlreadyExistsError('capsule cl-x already exists'), Code.AlreadyExists, AlreadyExistsError],
  [new IllegalStateError('cl-x', 'stopped', 'pause'), Code.FailedPrecondition, FailedPreconditionError],
  [new TemplateInUseError('template "a" is used by "b"'), Code.FailedPrecondition, FailedPreconditionError],
  [new HostCapacityError('host full: pids', 'pids'), Code.ResourceExhausted, ResourceExhaustedError],
];

test('each agent error leaves the service with its Connect code and comes back as its kind', async () => {
  for (const [err, code, back] of cases) {
    const svc = withErrorMapping({
      async unary(): Promise<never> {
        throw err;
      },
      // biome-ignore lint/correctness/useYield: the stream fails before its first message
      async *stream(): AsyncGenerator<never> {
        throw err;
      },
    });
    for (const call of [
      () => svc.unary(),
      async () => {
        for await (const _ of svc.stream());
      },
    ]) {
      await assert.rejects(call(), (e: unknown) => {
        assert.ok(e instanceof ConnectError, `${err.name}: ${String(e)}`);
        assert.equal(e.code, code, `${err.name} -> ${Code[e.code]}`);
        assert.equal(e.rawMessage, err.message);
        const domain = fromConnectError(e);
        assert.ok(domain instanceof back, `${Code[code]} -> ${domain.name}`);
        return true;
      });
    }
  }
  // Anything else is internal, with its message.
  const svc = withErrorMapping({
    async unary(): Promise<never> {
      throw new Error('disk on fire');
    },
  });
  await assert.rejects(
    svc.unary(),
    (e: unknown) => e instanceof ConnectError && e.code === Code.Internal && e.rawMessage === 'disk on fire',
  );
});

test('the template store refuses with typed errors: unknown is not_found', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wrenn-store-errors-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = new TemplateStore({ imagesDir: dir });
  await assert.rejects(
    store.deleteTemplate('nope'),
    (e: unknown) => e instanceof NotFoundError && /does not exist/.test(e.message),
  );
  await assert.rejects(
    store.snapshotFromCapsule({ name: 'snap', parent: 'nope', upperDir: join(dir, 'upper') }),
    (e: unknown) => e instanceof NotFoundError && /parent template "nope"/.test(e.message),
  );
});
