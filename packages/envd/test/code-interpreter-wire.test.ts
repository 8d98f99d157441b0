// The code-interpreter server's Jupyter wire format: what it signs is accepted back, and a message
// with a wrong signature, a wrong key or missing frames is dropped (a kernel's iopub is a socket
// any process of the capsule could try to publish on).
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { JupyterWire } from '../src/code-interpreter/jupyter-wire.js';

const frames = (parts: string[]) => parts.map((p) => Buffer.from(p));

test('a signed request parses back, with its header and content', () => {
  const wire = new JupyterWire('k3y');
  const { msgId, frames: sent } = wire.request('execute_request', { code: '1+1' });
  const msg = wire.parse(frames(['identity', ...sent]));
  assert.ok(msg);
  assert.equal(msg.header.msg_id, msgId);
  assert.equal(msg.header.msg_type, 'execute_request');
  assert.equal(msg.header.session, wire.session);
  assert.deepEqual(msg.content, { code: '1+1' });
  // The signature is HMAC-SHA256 of header, parent, metadata and content under the key.
  const expected = createHmac('sha256', 'k3y')
    .update(sent[2] ?? '')
    .update('{}')
    .update('{}')
    .update(sent[5] ?? '');
  assert.equal(sent[1], expected.digest('hex'));
});

test('a message signed with another key, tampered with or cut short is dropped', () => {
  const wire = new JupyterWire('k3y');
  const { frames: other } = new JupyterWire('not-the-key').request('stream', { text: 'forged' });
  assert.equal(wire.parse(frames(other)), undefined);
  const { frames: sent } = wire.request('stream', { text: 'real' });
  const tampered = [...sent];
  tampered[5] = JSON.stringify({ text: 'changed' });
  assert.equal(wire.parse(frames(tampered)), undefined);
  assert.equal(wire.parse(frames(sent.slice(0, 4))), undefined);
  assert.equal(wire.parse(frames(sent.slice(1))), undefined);
});
