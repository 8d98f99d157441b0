// The languages a code-interpreter context can run, and the names E2B's SDK sends for them
// (`js`, `ts`, ...). R and Java are known to E2B but this template has no kernel for them.

export const LANGUAGES = ['python', 'javascript', 'typescript', 'bash'] as const;
export type Language = (typeof LANGUAGES)[number];

const ALIASES: Record<string, string> = {
  js: 'javascript',
  ts: 'typescript',
  sh: 'bash',
  py: 'python',
  python3: 'python',
};
const KNOWN_ELSEWHERE = new Set(['r', 'java', 'deno']);

export class UnknownLanguageError extends Error {}

/** The context language for a request's `language` (python when absent). */
export function normalizeLanguage(language: unknown): Language {
  if (language === undefined || language === null || language === '') return 'python';
  if (typeof language !== 'string') throw new UnknownLanguageError('language must be a string');
  const lower = language.trim().toLowerCase();
  const lang = ALIASES[lower] ?? lower;
  if ((LANGUAGES as readonly string[]).includes(lang)) return lang as Language;
  const why = KNOWN_ELSEWHERE.has(lang) ? 'this template has no kernel for it' : 'unknown language';
  throw new UnknownLanguageError(
    `language '${language}' is not available: ${why} (available: ${LANGUAGES.join(', ')})`,
  );
}
