// The code-interpreter server's pure parts: the language names E2B's SDK sends, how a Jupyter mime
// bundle becomes E2B's result line, and the env snippets a context runs (quoting included).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { envSnippet } from '../src/code-interpreter/env-snippets.js';
import { normalizeLanguage, UnknownLanguageError } from '../src/code-interpreter/languages.js';
import { resultLine } from '../src/code-interpreter/output.js';

test('languages: aliases, python by default, a clear refusal for the ones without a kernel', () => {
  assert.equal(normalizeLanguage(undefined), 'python');
  assert.equal(normalizeLanguage(''), 'python');
  assert.equal(normalizeLanguage('JS'), 'javascript');
  assert.equal(normalizeLanguage('ts'), 'typescript');
  assert.equal(normalizeLanguage('sh'), 'bash');
  assert.throws(() => normalizeLanguage('r'), /'r' is not available: this template has no kernel for it/);
  assert.throws(() => normalizeLanguage('cobol'), /unknown language/);
  assert.throws(() => normalizeLanguage(3), UnknownLanguageError);
});

test('a mime bundle becomes a result line; unknown mime types go to extra', () => {
  const line = resultLine(
    { 'text/plain': "'hi'", 'image/png': 'iVBOR', 'e2b/chart': {}, 'application/x-custom': 1 },
    true,
  );
  assert.deepEqual(line, {
    type: 'result',
    is_main_result: true,
    text: 'hi',
    png: 'iVBOR',
    extra: { 'application/x-custom': 1 },
  });
  assert.equal(resultLine({ 'text/plain': '2' }, false).text, '2');
});

test('env snippets quote values for each language and skip names bash cannot take', () => {
  const tricky = { A: `it's "q" \\ \n$HOME` };
  assert.equal(envSnippet('bash', { ...tricky, 'BAD-NAME': 'x' }), `export A='it'\\''s "q" \\ \n$HOME'`);
  assert.equal(envSnippet('bash', {}, ['A', 'BAD-NAME']), 'unset A');
  assert.equal(envSnippet('javascript', tricky), `process.env["A"] = ${JSON.stringify(tricky.A)};`);
  assert.equal(envSnippet('python', {}, ['A']), `__import__('os').environ.pop("A", None)`);
});
