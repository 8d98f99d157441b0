// The code a context runs silently to set (or undo) environment variables inside its kernel:
// per-call env vars are set before the cell and undone after it; the sandbox's own are set once.
import type { Language } from './languages.js';

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;
const shQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
// JSON string literals are valid Python string literals too (with \uXXXX escapes).
const lit = (s: string) => JSON.stringify(s);

export function envSnippet(language: Language, set: Record<string, string>, unset: string[] = []): string {
  const lines: string[] = [];
  if (language === 'python') {
    for (const [k, v] of Object.entries(set)) lines.push(`__import__('os').environ[${lit(k)}] = ${lit(v)}`);
    for (const k of unset) lines.push(`__import__('os').environ.pop(${lit(k)}, None)`);
  } else if (language === 'javascript' || language === 'typescript') {
    for (const [k, v] of Object.entries(set)) lines.push(`process.env[${lit(k)}] = ${lit(v)};`);
    for (const k of unset) lines.push(`delete process.env[${lit(k)}];`);
  } else {
    for (const [k, v] of Object.entries(set)) if (identifier.test(k)) lines.push(`export ${k}=${shQuote(v)}`);
    for (const k of unset) if (identifier.test(k)) lines.push(`unset ${k}`);
  }
  return lines.join('\n');
}
