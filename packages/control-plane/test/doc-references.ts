// Reads the code references in a Markdown document (ARCHITECTURE.md) and says which are no longer
// true, so a document that names files and functions cannot drift from the code without a test
// failing. A reference is an inline code span: a repository path (`packages/x/src/y.ts`), or a
// symbol right after one (`packages/x/src/y.ts` `fn`, chained with → or a comma: `fn` → `other`),
// which must be declared in that file. `A.b` means b is declared inside A (a class's method, a
// function inside a function, a property of a returned object). A camelCase symbol standing
// alone must be declared in one of the files the document names.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/** Top-level folders a path span may start with. */
const PATH_ROOTS = /^(packages|proto|scripts|images|bench)\//;
const SYMBOL = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;
const FILE_LIKE = /\.(ts|js|cjs|mjs|json|md|c|cc|h|proto|sh|yaml)$/;
/** Between a path (or bound symbol) and the next symbol it binds: whitespace, an arrow or a comma. */
const CHAIN_GAP = /^[\s→,]*$/;
// JavaScript files (envd's start.cjs, benches) are read by the same parser.
const TS_FILE = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;

export interface DocReference {
  line: number;
  path?: string;
  /** The symbol, with the file it must be declared in (bound) or undefined (any named file). */
  symbol?: string;
  file?: string;
}

interface Span {
  text: string;
  line: number;
  /** Text from the end of the previous span in the same paragraph (undefined for the first). */
  gapBefore: string | undefined;
}

/** Inline code spans, paragraph by paragraph (fenced blocks skipped). */
function spansOf(markdown: string): Span[] {
  const out: Span[] = [];
  let inFence = false;
  /** Whether a span came before in this paragraph. */
  let open = false;
  let gap = '';
  const lines = markdown.split('\n');
  lines.forEach((text, i) => {
    if (/^\s*```/.test(text)) {
      inFence = !inFence;
      open = false;
      return;
    }
    if (inFence) return;
    if (text.trim() === '' || /^\s*(#|[-*] |\d+\. |\|)/.test(text)) {
      // A blank line, heading, list item or table row starts a new paragraph.
      open = false;
      gap = '';
    }
    const re = /`([^`\n]+)`/g;
    let col = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      gap += text.slice(col, m.index);
      out.push({ text: m[1] ?? '', line: i + 1, gapBefore: open ? gap : undefined });
      col = m.index + m[0].length;
      open = true;
      gap = '';
    }
    gap += `${text.slice(col)}\n`;
    // Table cells do not run into each other across rows.
    if (/^\s*\|/.test(text)) open = false;
  });
  return out;
}

const isPath = (s: string) => PATH_ROOTS.test(s) && !/[\s*<>]/.test(s);
const isSymbol = (s: string) => SYMBOL.test(s) && !FILE_LIKE.test(s);
/** A span that is clearly code even when unbound: a camel hump somewhere (createCapsule, Foo.bar). */
const isCamel = (s: string) => isSymbol(s) && /[a-z][A-Z]/.test(s);

export function referencesOf(markdown: string): DocReference[] {
  const refs: DocReference[] = [];
  let boundFile: string | undefined;
  for (const s of spansOf(markdown)) {
    const chained = s.gapBefore !== undefined && CHAIN_GAP.test(s.gapBefore);
    if (isPath(s.text)) {
      refs.push({ line: s.line, path: s.text.replace(/\/$/, '') });
      boundFile = s.text;
      continue;
    }
    if (chained && boundFile && isSymbol(s.text)) {
      refs.push({ line: s.line, symbol: s.text, file: boundFile });
      continue;
    }
    boundFile = undefined;
    if (isCamel(s.text)) refs.push({ line: s.line, symbol: s.text });
  }
  return refs;
}

/** Declarations in a TypeScript or JavaScript file, each with the names of the declarations it sits in. */
function tsDeclarations(source: string, fileName: string): Declaration[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false);
  const found: Declaration[] = [];
  const visit = (node: ts.Node, outer: string[]) => {
    let name: string | undefined;
    if (
      (ts.isFunctionDeclaration(node) ||
        ts.isClassDeclaration(node) ||
        ts.isInterfaceDeclaration(node) ||
        ts.isTypeAliasDeclaration(node) ||
        ts.isEnumDeclaration(node) ||
        ts.isMethodDeclaration(node) ||
        ts.isPropertyDeclaration(node) ||
        ts.isPropertyAssignment(node) ||
        ts.isGetAccessorDeclaration(node) ||
        ts.isVariableDeclaration(node)) &&
      node.name &&
      ts.isIdentifier(node.name)
    ) {
      name = node.name.text;
    }
    if (name) found.push({ name, outer });
    ts.forEachChild(node, (child) => visit(child, name ? [...outer, name] : outer));
  };
  visit(sf, []);
  return found;
}

/** Names a .proto file declares: services, messages, enums and rpcs (no nesting kept). */
function protoDeclarations(source: string): Declaration[] {
  return [...source.matchAll(/^\s*(?:service|message|enum|rpc)\s+(\w+)/gm)].map((m) => ({
    name: m[1] ?? '',
    outer: [],
  }));
}

/** C or C++ function definitions: a return type, the name, parameters, then a body (no nesting kept). */
function cDeclarations(source: string): Declaration[] {
  const re = /^[ \t]*(?:[\w:<>,*&]+[ \t*&]+)+(?:[\w]+::)?(\w+)\s*\([^;{}]*\)\s*(?:const\s*)?\{/gm;
  return [...source.matchAll(re)].map((m) => ({ name: m[1] ?? '', outer: [] }));
}

interface Declaration {
  name: string;
  /** Names of the declarations it sits in, outermost first. */
  outer: string[];
}

export function declarationsOf(source: string, fileName: string): Declaration[] {
  if (TS_FILE.test(fileName)) return tsDeclarations(source, fileName);
  if (fileName.endsWith('.proto')) return protoDeclarations(source);
  if (/\.(c|cc|h)$/.test(fileName)) return cDeclarations(source);
  return [];
}

/** Whether `symbol` (plain or A.b: b declared inside A) is among the declarations. */
export function declares(declarations: readonly Declaration[], symbol: string): boolean {
  const parts = symbol.split('.');
  const last = parts[parts.length - 1] ?? '';
  const outer = parts.slice(0, -1);
  return declarations.some((d) => d.name === last && inOrder(outer, d.outer));
}

/** Whether the names of chain appear in within in the same order (not necessarily adjacent). */
function inOrder(chain: string[], within: string[]): boolean {
  let i = 0;
  for (const w of within) if (w === chain[i]) i++;
  return i === chain.length;
}

/** Every reference that is not true of the tree at root, as a sentence naming its line. */
export function staleReferences(markdown: string, root: string): string[] {
  const refs = referencesOf(markdown);
  const problems: string[] = [];
  const parsed = new Map<string, Declaration[]>();
  const declared = (p: string, symbol: string) => {
    let d = parsed.get(p);
    if (d === undefined) parsed.set(p, (d = declarationsOf(readFileSync(join(root, p), 'utf8'), p)));
    return declares(d, symbol);
  };
  const isFile = (p: string) => existsSync(join(root, p)) && statSync(join(root, p)).isFile();
  for (const r of refs) {
    if (r.path && !existsSync(join(root, r.path))) problems.push(`line ${r.line}: ${r.path} does not exist`);
  }
  const namedFiles = [...new Set(refs.flatMap((r) => (r.path && isFile(r.path) ? [r.path] : [])))];
  for (const r of refs) {
    if (!r.symbol) continue;
    if (r.file) {
      if (!isFile(r.file)) {
        if (existsSync(join(root, r.file))) problems.push(`line ${r.line}: ${r.symbol} follows ${r.file}, not a file`);
        continue;
      }
      if (!declared(r.file, r.symbol)) problems.push(`line ${r.line}: ${r.symbol} is not declared in ${r.file}`);
    } else if (!namedFiles.some((f) => declared(f, r.symbol ?? ''))) {
      problems.push(`line ${r.line}: ${r.symbol} is not declared in any file the document names`);
    }
  }
  return problems;
}
