// Templates and snapshots: lists (templates with their tags), delete, start a capsule from one, a
// template's tags, and building a template from a Dockerfile when the control plane offers it.
import { useEffect, useState } from 'preact/hooks';
import { apiOperations, snapshots, type Template, templates } from '../api.js';
import { ago, bytes } from '../format.js';
import { navigate } from '../router.js';
import { Confirm, Empty, ErrorNote, TableHead, useAction, usePoll } from '../ui.js';
import { CreateCapsuleDialog } from './create-capsule.js';
import { TemplateBuild } from './template-build.js';
import { TemplateTagsDialog } from './template-tags.js';

function TemplateTable({
  items,
  caption,
  onDelete,
  onStart,
  onTags,
  showParent,
}: {
  items: Template[];
  caption: string;
  onDelete: (t: Template) => void;
  onStart: (t: Template) => void;
  /** Given: a Tags column, and a button that edits a team template's tags. */
  onTags?: (t: Template) => void;
  showParent?: boolean;
}) {
  return (
    <table>
      <caption class="sr-only">{caption}</caption>
      <TableHead
        columns={[
          'Name',
          'Kind',
          showParent === true && 'From',
          onTags !== undefined && 'Tags',
          'Runtimes',
          'Default size',
          'Disk',
          'Age',
        ]}
        actions
      />
      <tbody>
        {items.map((t) => (
          <tr key={t.id}>
            <th scope="row">{t.name}</th>
            <td>{t.builtin ? 'built-in' : t.kind}</td>
            {showParent && <td>{t.parent ?? '—'}</td>}
            {onTags && (
              <td data-testid={`tags-of-${t.name}`}>
                {t.tags.length === 0
                  ? '—'
                  : t.tags.map((tag) => (
                      <span key={tag} class="tag">
                        {tag}
                      </span>
                    ))}
              </td>
            )}
            <td>{t.runtimes.join(', ') || '—'}</td>
            <td>
              {t.vcpus} vCPU, {t.memory_mb} MiB
            </td>
            <td>{t.size_bytes ? bytes(t.size_bytes) : '—'}</td>
            <td title={t.created_at}>{Date.parse(t.created_at) > Date.UTC(2000, 0) ? ago(t.created_at) : '—'}</td>
            <td>
              <div class="row-actions">
                <button type="button" aria-label={`Start a capsule from ${t.name}`} onClick={() => onStart(t)}>
                  Start capsule
                </button>
                {onTags && !t.builtin && (
                  <button type="button" aria-label={`Tags of ${t.name}`} onClick={() => onTags(t)}>
                    Tags
                  </button>
                )}
                {!t.builtin && (
                  <button type="button" class="danger" aria-label={`Delete ${t.name}`} onClick={() => onDelete(t)}>
                    Delete
                  </button>
                )}
              </div>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function CatalogPage() {
  const tpl = usePoll(() => templates.list(), [], 10_000);
  const snaps = usePoll(() => snapshots.list(), [], 10_000);
  const act = useAction();
  const [toDelete, setToDelete] = useState<{ t: Template; snapshot: boolean } | null>(null);
  const [startFrom, setStartFrom] = useState<string | null>(null);
  const [tagsOf, setTagsOf] = useState<string | null>(null);
  const [ops, setOps] = useState<Set<string> | null>(null);
  useEffect(() => void apiOperations().then(setOps), []);
  const snapshotNames = new Set((snaps.data ?? []).map((s) => s.name));
  const plainTemplates = (tpl.data ?? []).filter((t) => !snapshotNames.has(t.name) && t.kind !== 'snapshot');
  return (
    <section aria-labelledby="catalog-title">
      <h1 id="catalog-title">Templates &amp; snapshots</h1>
      <ErrorNote error={act.error} />
      <h2>Snapshots</h2>
      <ErrorNote error={snaps.error} onRetry={() => void snaps.refresh()} />
      {snaps.data && snaps.data.length === 0 ? (
        <Empty>No snapshots yet. Snapshot a running or paused capsule from its page or the capsule list.</Empty>
      ) : (
        <TemplateTable
          items={snaps.data ?? []}
          caption="Snapshots"
          showParent
          onStart={(t) => setStartFrom(t.name)}
          onDelete={(t) => setToDelete({ t, snapshot: true })}
        />
      )}
      <h2>Templates</h2>
      <ErrorNote error={tpl.error} onRetry={() => void tpl.refresh()} />
      {tpl.data && plainTemplates.length === 0 ? (
        <Empty>No templates.</Empty>
      ) : (
        <TemplateTable
          items={plainTemplates}
          caption="Templates"
          onStart={(t) => setStartFrom(t.name)}
          onDelete={(t) => setToDelete({ t, snapshot: false })}
          onTags={(t) => setTagsOf(t.name)}
        />
      )}
      <h2>Build a template from a Dockerfile</h2>
      <TemplateBuild
        available={ops === null ? null : ops.has('POST /v1/templates')}
        onBuilt={() => void tpl.refresh()}
      />
      <Confirm
        open={toDelete !== null}
        title={`Delete ${toDelete?.snapshot ? 'snapshot' : 'template'}?`}
        body={
          <>
            <strong>{toDelete?.t.name}</strong> will be deleted. This is refused while capsules made from it exist.
          </>
        }
        confirmLabel="Delete"
        onClose={() => setToDelete(null)}
        onConfirm={() => {
          const d = toDelete;
          if (!d) return;
          void act.run('delete', async () => {
            await (d.snapshot ? snapshots.remove(d.t.name) : templates.remove(d.t.name));
            await Promise.all([snaps.refresh(), tpl.refresh()]);
          });
        }}
      />
      {tagsOf !== null && (
        <TemplateTagsDialog name={tagsOf} onClose={() => setTagsOf(null)} onChanged={() => void tpl.refresh()} />
      )}
      <CreateCapsuleDialog
        open={startFrom !== null}
        initialTemplate={startFrom ?? undefined}
        onClose={() => setStartFrom(null)}
        onCreated={(c) => {
          setStartFrom(null);
          navigate(`/capsules/${c.id}`);
        }}
      />
    </section>
  );
}
