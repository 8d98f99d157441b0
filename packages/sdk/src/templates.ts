// Snapshots (a capsule saved as a template new capsules start from) and templates.

import type { AssignedTagsJson, TemplateTagJson } from '@wrenn/protocol';
import type { ConnectionOptions } from './config.js';
import { ApiClient } from './http.js';
import { type BuildTemplateOptions, buildTemplate, type TemplateBuildInfo } from './templates-build.js';
import { type TemplateInfo, type TemplateJson, templateInfo } from './types.js';

// biome-ignore lint/complexity/noStaticOnlyClass: E2B-shaped API (Snapshot.create/list/delete)
export class Snapshot {
  /** Saves a running or paused capsule as a snapshot; start new capsules with { template: name }. */
  static async create(capsuleId: string, name: string, opts: ConnectionOptions = {}): Promise<TemplateInfo> {
    const api = new ApiClient(opts);
    const j = await api.json<TemplateJson>('POST', '/v1/snapshots', {
      json: { capsule_id: capsuleId, name },
      timeoutMs: opts.requestTimeoutMs ?? 0,
    });
    return templateInfo(j);
  }

  static async list(opts: ConnectionOptions = {}): Promise<TemplateInfo[]> {
    const r = await new ApiClient(opts).json<{ snapshots: TemplateJson[] }>('GET', '/v1/snapshots');
    return r.snapshots.map(templateInfo);
  }

  /** Deletes a snapshot (refused while capsules made from it exist). */
  static async delete(name: string, opts: ConnectionOptions = {}): Promise<void> {
    await new ApiClient(opts).json('DELETE', `/v1/snapshots/${encodeURIComponent(name)}`, {
      timeoutMs: opts.requestTimeoutMs ?? 0,
    });
  }
}

// biome-ignore lint/complexity/noStaticOnlyClass: E2B-shaped API (Template.list/delete/build)
export class Template {
  /** Built-in templates and the team's own (snapshots and Dockerfile builds). */
  static async list(opts: ConnectionOptions = {}): Promise<TemplateInfo[]> {
    const r = await new ApiClient(opts).json<{ templates: TemplateJson[] }>('GET', '/v1/templates');
    return r.templates.map(templateInfo);
  }

  static async delete(name: string, opts: ConnectionOptions = {}): Promise<void> {
    await new ApiClient(opts).json('DELETE', `/v1/templates/${encodeURIComponent(name)}`, {
      timeoutMs: opts.requestTimeoutMs ?? 0,
    });
  }

  /** The template's tags and the builds they point at ('default' is its latest build). */
  static async tags(
    name: string,
    opts: ConnectionOptions = {},
  ): Promise<{ tag: string; buildId: string; createdAt: Date }[]> {
    const r = await new ApiClient(opts).json<{ tags: TemplateTagJson[] }>(
      'GET',
      `/v1/templates/${encodeURIComponent(name)}/tags`,
    );
    return r.tags.map((t) => ({ tag: t.tag, buildId: t.build_id, createdAt: new Date(t.created_at) }));
  }

  /** Points `tags` at the build `ref` names ('name' = its latest build, or 'name:tag'). */
  static async assignTags(
    ref: string,
    tags: string[],
    opts: ConnectionOptions = {},
  ): Promise<{ buildId: string; tags: string[] }> {
    const r = await new ApiClient(opts).json<AssignedTagsJson>(
      'POST',
      `/v1/templates/${encodeURIComponent(ref)}/tags`,
      { json: { tags } },
    );
    return { buildId: r.build_id, tags: r.tags };
  }

  /** Removes a tag from the template `name` (a build no tag keeps any more goes with it). */
  static async removeTag(name: string, tag: string, opts: ConnectionOptions = {}): Promise<void> {
    await new ApiClient(opts).json(
      'DELETE',
      `/v1/templates/${encodeURIComponent(name)}/tags/${encodeURIComponent(tag)}`,
    );
  }

  /**
   * Builds a template from a Dockerfile and its context and waits for it (the log goes to
   * onLog); throws TemplateBuildError when a step fails. See templates-build.ts.
   */
  static build(opts: BuildTemplateOptions): Promise<TemplateBuildInfo> {
    return buildTemplate(opts);
  }
}
