// The JSON lines a code-interpreter execution streams (E2B's protocol), and how a Jupyter mime
// bundle becomes a `result` line.

export type OutputLine = Record<string, unknown> & { type: string };
export type Emit = (line: OutputLine) => void;

const MIME_FIELDS: [string, string][] = [
  ['html', 'text/html'],
  ['markdown', 'text/markdown'],
  ['svg', 'image/svg+xml'],
  ['png', 'image/png'],
  ['jpeg', 'image/jpeg'],
  ['pdf', 'application/pdf'],
  ['latex', 'text/latex'],
  ['json', 'application/json'],
  ['javascript', 'application/javascript'],
  ['data', 'e2b/data'],
  ['chart', 'e2b/chart'],
];

const isEmptyObject = (v: unknown) =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

/** A Jupyter mime bundle as E2B's result line; mime types E2B has no field for go to `extra`. */
export function resultLine(bundle: Record<string, unknown>, isMain: boolean): OutputLine {
  const data = { ...bundle };
  const out: OutputLine = { type: 'result', is_main_result: isMain };
  let text = data['text/plain'];
  delete data['text/plain'];
  // A Python string's repr comes quoted; E2B's text is the bare string.
  if (typeof text === 'string' && text.length >= 2 && text[0] === text.at(-1) && (text[0] === "'" || text[0] === '"'))
    text = text.slice(1, -1);
  if (text !== undefined && text !== null) out.text = text;
  for (const [field, mime] of MIME_FIELDS) {
    const value = data[mime];
    delete data[mime];
    if (value !== undefined && value !== null && !isEmptyObject(value)) out[field] = value;
  }
  if (Object.keys(data).length > 0) out.extra = data;
  return out;
}

export const errorLine = (name: string, value: string, traceback = ''): OutputLine => ({
  type: 'error',
  name,
  value,
  traceback,
});
