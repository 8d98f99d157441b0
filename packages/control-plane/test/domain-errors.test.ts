// Domain errors at every edge, from one table of cases: each error a service throws -> the native API's status and envelope code, the E2B API's status and {code, message}
// body (both answered by a real Fastify app with the real error handlers), the Connect code the
// agent's service sends, and back: the class the control plane's agent client raises for that code
// (through a real in-process Connect client wrapped like the pool's). Then, live, an unknown
// capsule is 404 on both APIs. The agent's own error classes: host-agent/test/domain-errors.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import {
  AlreadyExistsError,
  ConflictError,
  DeadlineExceededError,
  DOMAIN_ERROR_KINDS,
  type DomainError,
  FailedPreconditionError,
  fromConnectError,
  HostFullError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  toConnectError,
  UnauthenticatedError,
  UnavailableError,
} from '@wrenn/protocol';
import { HostAgentService } from '@wrenn/protocol/gen/hostagent/v1/hostagent_pb';
import Fastify from 'fastify';
import { withDomainErrors } from '../src/agents/domain-errors-client.js';
import { createInProcessClient } from '../src/agents/in-process-client.js';
import { e2bErrorHandler } from '../src/api/e2b/errors.js';
import { errorHandler } from '../src/api/errors.js';
import { DbError } from '../src/db/errors.js';
import { BuildContextError, CONTEXT_LIMITS, makeContext } from '../src/templates/build-context.js';
import { client, newTeamKey, startBareControlPlane } from './native-helpers.js';

interface Case {
  err: DomainError;
  status: number;
  code: string;
  connect: Code;
  /** The class the agent client raises for `connect` (the kind's own class). */
  back: abstract new (
    ...a: never[]
  ) => DomainError;
}

const cases: Case[] = [
  {
    err: new InvalidArgumentError('bad vcpus'),
    status: 400,
    code: 'invalid_argument',
    connect: Code.InvalidArgument,
    back: InvalidArgumentError,
  },
  {
    err: new InvalidArgumentError('line 2', { code: 'invalid_dockerfile' }),
    status: 400,
    code: 'invalid_dockerfile',
    connect: Code.InvalidArgument,
    back: InvalidArgumentError,
  },
  {
    err: new UnauthenticatedError('no key'),
    status: 401,
    code: 'unauthenticated',
    connect: Code.Unauthenticated,
    back: UnauthenticatedError,
  },
  {
    err: new PermissionDeniedError('admin only'),
    status: 403,
    code: 'permission_denied',
    connect: Code.PermissionDenied,
    back: PermissionDeniedError,
  },
  {
    err: new NotFoundError('capsule cl-x not found'),
    status: 404,
    code: 'not_found',
    connect: Code.NotFound,
    back: NotFoundError,
  },
  {
    err: new AlreadyExistsError('taken'),
    status: 409,
    code: 'already_exists',
    connect: Code.AlreadyExists,
    back: AlreadyExistsError,
  },
  {
    err: new ConflictError('changed meanwhile'),
    status: 409,
    code: 'conflict',
    connect: Code.Aborted,
    back: ConflictError,
  },
  {
    err: new FailedPreconditionError('paused'),
    status: 409,
    code: 'failed_precondition',
    connect: Code.FailedPrecondition,
    back: FailedPreconditionError,
  },
  {
    err: new InternalError('start failed', { code: 'capsule_start_failed' }),
    status: 500,
    code: 'capsule_start_failed',
    connect: Code.Internal,
    back: InternalError,
  },
  {
    err: new UnavailableError('host gone'),
    status: 503,
    code: 'unavailable',
    connect: Code.Unavailable,
    back: UnavailableError,
  },
  {
    err: new UnavailableError('no host', { code: 'no_host_available' }),
    status: 503,
    code: 'no_host_available',
    connect: Code.Unavailable,
    back: UnavailableError,
  },
  {
    err: new HostFullError('memory is full'),
    status: 503,
    code: 'host_full',
    connect: Code.Unavailable,
    back: UnavailableError,
  },
  {
    err: new DeadlineExceededError('too slow'),
    status: 504,
    code: 'deadline_exceeded',
    connect: Code.DeadlineExceeded,
    back: DeadlineExceededError,
  },
  {
    err: new ResourceExhaustedError('disk full'),
    status: 507,
    code: 'resource_exhausted',
    connect: Code.ResourceExhausted,
    back: ResourceExhaustedError,
  },
  {
    err: new DbError('conflict', 'name in use'),
    status: 409,
    code: 'conflict',
    connect: Code.Aborted,
    back: ConflictError,
  },
];

/** A Fastify app whose one route throws the error of the case named in the path, with the API's real handler. */
async function appThrowing(handler: typeof errorHandler) {
  const app = Fastify();
  app.setErrorHandler(handler);
  app.get<{ Params: { i: string } }>('/throw/:i', async (req) => {
    throw cases[Number(req.params.i)]?.err ?? new Error('no such case');
  });
  await app.ready();
  return app;
}

describe('domain errors at each edge', () => {
  test('every kind has a case', () => {
    const covered = new Set(cases.map((c) => c.err.kind));
    assert.deepEqual(
      DOMAIN_ERROR_KINDS.filter((k) => !covered.has(k)),
      [],
    );
  });

  test('native API: status and {error: {code, message}}', async (t) => {
    const app = await appThrowing(errorHandler);
    t.after(() => app.close());
    for (const [i, c] of cases.entries()) {
      const r = await app.inject({ method: 'GET', url: `/throw/${i}` });
      assert.equal(r.statusCode, c.status, `${c.err.name}: ${r.body}`);
      assert.deepEqual(r.json(), { error: { code: c.code, message: c.err.message } }, c.err.name);
    }
  });

  test('E2B API: the same statuses, body {code: status, message}', async (t) => {
    const app = await appThrowing(e2bErrorHandler);
    t.after(() => app.close());
    for (const [i, c] of cases.entries()) {
      const r = await app.inject({ method: 'GET', url: `/throw/${i}` });
      assert.equal(r.statusCode, c.status, `${c.err.name}: ${r.body}`);
      assert.deepEqual(r.json(), { code: c.status, message: c.err.message }, c.err.name);
    }
  });

  test('Connect: the code sent, and the class the agent client raises for it', async () => {
    for (const c of cases) {
      const sent = toConnectError(c.err);
      assert.equal(sent.code, c.connect, `${c.err.name} -> ${Code[sent.code]}`);
      assert.equal(sent.rawMessage, c.err.message);
      const back = fromConnectError(sent);
      assert.ok(back instanceof c.back, `${Code[c.connect]} -> ${back.name}, want ${c.back.name}`);
      assert.equal(back.kind, c.err.kind);
      assert.equal(back.message, c.err.message);
    }
    // Codes no kind maps to are internal; errors that are no domain error leave as internal.
    assert.ok(fromConnectError(new ConnectError('gone', Code.Canceled)) instanceof InternalError);
    assert.equal(toConnectError(new TypeError('boom')).code, Code.Internal);
  });

  test('through a Connect client: the agent service throws, the wrapped client raises the domain class', async () => {
    let thrown: Error = new Error('unset');
    // As the agent's service does (service/errors.ts): what a method throws leaves through toConnectError.
    const impl = {
      async getCapsule(): Promise<never> {
        throw toConnectError(thrown);
      },
      // biome-ignore lint/correctness/useYield: the stream fails before its first message
      async *readFile(): AsyncGenerator<never> {
        throw toConnectError(thrown);
      },
    };
    const agent = withDomainErrors(
      createInProcessClient(HostAgentService, impl as unknown as ServiceImpl<typeof HostAgentService>),
    );
    for (const c of cases) {
      thrown = c.err;
      await assert.rejects(
        agent.getCapsule({ id: 'cl-x' }),
        (e: unknown) => e instanceof c.back && e.message === c.err.message,
      );
      await assert.rejects(
        (async () => {
          for await (const _ of agent.readFile({ capsuleId: 'cl-x', path: '/x' })) {
            // the stream fails before its first message
          }
        })(),
        (e: unknown) => e instanceof c.back,
      );
    }
  });
});

for (const dialect of ['sqlite'] as const) {
  test(`an unknown capsule is 404 on the native and the E2B API [${dialect}]`, async (t) => {
    const cp = await startBareControlPlane(t, dialect);
    const { key } = await newTeamKey(cp);
    const call = client(cp.url, key);
    const id = 'cl-0000000000000000000000';
    const native = await call('GET', `/v1/capsules/${id}`);
    assert.equal(native.status, 404, native.text);
    assert.equal(native.body.error.code, 'not_found');
    assert.match(native.body.error.message, /capsule cl-0+ not found/);
    const e2b = await call('GET', `/sandboxes/${id}`);
    assert.equal(e2b.status, 404, e2b.text);
    assert.equal(e2b.body.code, 404);
    assert.match(e2b.body.message, /not found/);
    const gone = await call('DELETE', `/sandboxes/${id}`);
    assert.equal(gone.status, 404, gone.text);
  });
}

test('a build context over the size limit is refused as tooLarge (the route answers 413), by a flag, not its wording', () => {
  // One zero-filled buffer listed twice: over the limit without holding twice the memory.
  const half = Buffer.alloc(CONTEXT_LIMITS.maxBytes / 2 + 1);
  const entries: [string, { data: Buffer; mode: number }][] = [
    ['a', { data: half, mode: 0o644 }],
    ['b', { data: half, mode: 0o644 }],
  ];
  assert.throws(
    () => makeContext(entries),
    (e: unknown) => e instanceof BuildContextError && e.tooLarge,
  );
  assert.throws(
    () => makeContext([['../x', { data: Buffer.from('x'), mode: 0o644 }]]),
    (e: unknown) => e instanceof BuildContextError && !e.tooLarge,
  );
});
