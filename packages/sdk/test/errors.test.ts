// The SDK's typed errors from the API's error answers: a full deployment (503 host_full) is a
// HostFullError a caller can catch and retry later, distinct from other 5xx answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorFromResponse, HostFullError, InvalidArgumentError, WrennError } from '../src/errors.js';

test('503 host_full is a HostFullError carrying the message that names what is full', () => {
  const message = 'host full: this host holds 2 capsules (warm pool included), its maximum (WRENN_MAX_CAPSULES=2)';
  const err = errorFromResponse(503, { error: { code: 'host_full', message } }, 'fallback');
  assert.ok(err instanceof HostFullError);
  assert.equal(err.status, 503);
  assert.equal(err.code, 'host_full');
  assert.equal(err.message, message);
  // Other 503s (no host online at all) stay plain WrennErrors; a 400 stays what it was.
  const none = errorFromResponse(503, { error: { code: 'no_host_available', message: 'no host is online' } }, 'x');
  assert.ok(none instanceof WrennError && !(none instanceof HostFullError));
  assert.ok(
    errorFromResponse(400, { error: { code: 'invalid_argument', message: 'bad' } }, 'x') instanceof
      InvalidArgumentError,
  );
});
