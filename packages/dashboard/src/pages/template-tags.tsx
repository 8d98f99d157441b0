// A template's tags (E2B's name:tag): which build each one points at, adding tags to the latest
// build or to the build another tag points at (POST /v1/templates/:ref/tags), and removing one
// (DELETE /v1/templates/:name/tags/:tag). The tag rule and what may be moved are the server's: its
// 400/404/409 message is shown as it is. 'default' is the latest build and cannot be moved or removed.
import { useState } from 'preact/hooks';
import { templates } from '../api.js';
import { ago } from '../format.js';
import { ErrorNote, Modal, TableHead, useAction, usePoll } from '../ui.js';

const DEFAULT_TAG = 'default';

export function TemplateTagsDialog({
  name,
  onClose,
  onChanged,
}: {
  name: string;
  onClose: () => void;
  onChanged: () => void;
}) {
  const list = usePoll(() => templates.tags(name), [name]);
  const [newTags, setNewTags] = useState('');
  const [target, setTarget] = useState(DEFAULT_TAG);
  const act = useAction();
  const changed = async () => {
    await list.refresh();
    onChanged();
  };
  const add = async (e: Event) => {
    e.preventDefault();
    const tags = newTags.split(/[\s,]+/).filter(Boolean);
    if (tags.length === 0) return act.setError(new Error('Type one or more tags, separated by spaces or commas'));
    await act.run('add', async () => {
      await templates.addTags(target === DEFAULT_TAG ? name : `${name}:${target}`, tags);
      setNewTags('');
      await changed();
    });
  };
  const tags = list.data ?? [];
  return (
    <Modal title={`Tags of ${name}`} open onClose={onClose}>
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      <table>
        <caption class="sr-only">Tags of {name}</caption>
        <TableHead columns={['Tag', 'Build', 'Set']} actions />
        <tbody>
          {tags.map((t) => (
            <tr key={t.tag}>
              <th scope="row">
                <code>
                  {name}:{t.tag}
                </code>
              </th>
              <td>
                <code title={t.build_id}>{t.build_id}</code>
              </td>
              <td title={t.created_at}>{ago(t.created_at)}</td>
              <td>
                {t.tag === DEFAULT_TAG ? (
                  <span class="muted">latest build</span>
                ) : (
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Remove tag ${t.tag}`}
                    disabled={!!act.busy}
                    onClick={() =>
                      void act.run(`remove ${t.tag}`, async () => {
                        await templates.removeTag(name, t.tag);
                        await changed();
                      })
                    }
                  >
                    Remove
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form onSubmit={add} class="grid-form">
        <label for="tag-new">New tags</label>
        <input
          id="tag-new"
          placeholder="stable v2"
          value={newTags}
          onInput={(e) => setNewTags((e.target as HTMLInputElement).value)}
        />
        <label for="tag-target">Point them at</label>
        <select id="tag-target" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
          {tags.map((t) => (
            <option key={t.tag} value={t.tag}>
              {t.tag === DEFAULT_TAG ? 'the latest build' : `the build ${t.tag} points at`}
            </option>
          ))}
        </select>
        <p class="hint span2">
          Start a capsule from a tag with the template <code>{name}:tag</code>. A tag that pointed elsewhere moves;
          removing the last tag of an older build deletes that build.
        </p>
        <div class="span2">
          <ErrorNote error={act.error} />
        </div>
        <div class="actions span2">
          <button type="button" onClick={onClose}>
            Done
          </button>
          <button type="submit" class="primary" disabled={!!act.busy}>
            {act.busy === 'add' ? 'Adding…' : 'Add tags'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
