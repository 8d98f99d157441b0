// Templates as a team sees them: the built-ins every host can build (minimal, base,
// code-interpreter-v1, also reachable as `code-interpreter`) plus the team's
// own (snapshots of its capsules, built images). A team's template shadows a built-in of that name.

import { CAPSULE_DEFAULTS, ConflictError, NotFoundError } from '@wrenn/protocol';
import type { ControlPlaneContext } from '../context.js';
import {
  listTemplates as listTemplateRows,
  resolveTemplate as resolveTemplateRow,
  type Template,
  validateTemplateName,
} from '../db/repositories/templates.js';
import { isKeptBuildName, isLayerName } from '../templates/layer-names.js';
import { imageAgentTemplateName, isImageTemplateName } from './image-templates.js';

/** Templates every host agent knows how to build on first use. */
export const BUILTIN_TEMPLATES = ['minimal', 'base', 'code-interpreter-v1'] as const;
/** Other names of built-ins (E2B's code interpreter is asked for by either name). */
export const BUILTIN_TEMPLATE_ALIASES: Readonly<Record<string, string>> = { 'code-interpreter': 'code-interpreter-v1' };
export const DEFAULT_TEMPLATE = CAPSULE_DEFAULTS.template;

function builtIn(name: string): Template {
  return {
    id: name,
    name,
    kind: 'base',
    teamId: null,
    hostId: null,
    parent: null,
    vcpus: 1,
    memoryMb: 512,
    runtimes: [],
    sizeBytes: 0,
    createdAt: new Date(0),
  };
}

export const isBuiltinTemplate = (name: string): boolean => (BUILTIN_TEMPLATES as readonly string[]).includes(name);

/**
 * The name the host agent stores a template under. Team templates are stored by their unique id
 * (tpl-...), because agent template names are host-global while team names are only unique per team;
 * image templates by the image's digest (oci-..., one per host for every team using the image).
 */
export const agentTemplateName = (t: Template): string =>
  t.teamId === null ? t.name : t.kind === 'image' ? imageAgentTemplateName(t) : t.id;

/** The template `name` for the team (own first, then built-in); 404 when there is none. */
export async function resolveTemplate(ctx: ControlPlaneContext, teamId: string, name: string): Promise<Template> {
  validateTemplateName(name);
  const row = await resolveTemplateRow(ctx.database.db, teamId, name);
  if (row) return row;
  const builtInName = BUILTIN_TEMPLATE_ALIASES[name] ?? name;
  if (isBuiltinTemplate(builtInName)) return builtIn(builtInName);
  throw new NotFoundError(`template '${name}' not found`);
}

/** Built-ins and the team's templates, by name; a team template hides a built-in of the same name. */
export async function listTemplates(
  ctx: ControlPlaneContext,
  teamId: string,
  filter: { kind?: Template['kind'] } = {},
): Promise<Template[]> {
  const rows = await listTemplateRows(ctx.database.db, { teamId, ...(filter.kind ? { kind: filter.kind } : {}) });
  const byName = new Map<string, Template>();
  if (!filter.kind || filter.kind === 'base') for (const n of BUILTIN_TEMPLATES) byName.set(n, builtIn(n));
  for (const r of rows) {
    // build cache layers, pulled images and tagged older builds are internal
    if (isLayerName(r.name) || isImageTemplateName(r.name) || isKeptBuildName(r.name)) continue;
    const have = byName.get(r.name);
    if (!have || have.teamId === null) byName.set(r.name, r);
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function assertNotBuiltin(name: string, action: string): void {
  if (isBuiltinTemplate(name)) {
    throw new ConflictError(`'${name}' is a built-in template; it cannot be ${action}`);
  }
}
