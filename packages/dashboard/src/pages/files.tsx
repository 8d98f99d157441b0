// The capsule's file browser: list, open (text preview), upload, download, mkdir, delete.
import { useRef, useState } from 'preact/hooks';
import { capsules, type FileEntry } from '../api.js';
import { bytes, joinPath, parentPath } from '../format.js';
import { Confirm, Empty, ErrorNote, TableHead, useAction, usePoll } from '../ui.js';

const PREVIEW_LIMIT = 256 * 1024;

export function FilesView({ capsuleId }: { capsuleId: string }) {
  const [dir, setDir] = useState('/');
  const [pathText, setPathText] = useState('/');
  const [preview, setPreview] = useState<{ path: string; text: string } | null>(null);
  const [toDelete, setToDelete] = useState<FileEntry | null>(null);
  const [newDir, setNewDir] = useState('');
  const upload = useRef<HTMLInputElement>(null);
  const list = usePoll(
    () =>
      capsules
        .listFiles(capsuleId, dir)
        .then((r) =>
          r.entries.sort(
            (a, b) => (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.name.localeCompare(b.name),
          ),
        ),
    [capsuleId, dir],
  );
  const act = useAction();
  const go = (p: string) => {
    setDir(p);
    setPathText(p);
    setPreview(null);
  };
  const open = (e: FileEntry) =>
    act.run('open', async () => {
      if (e.size > PREVIEW_LIMIT)
        throw new Error(`${e.name} is ${bytes(e.size)}: too large to show here; download it instead`);
      const buf = new Uint8Array(await (await capsules.download(capsuleId, e.path)).arrayBuffer());
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
      } catch {
        throw new Error(`${e.name} is not text; download it instead`);
      }
      setPreview({ path: e.path, text });
    });
  const download = (e: FileEntry) =>
    act.run('download', async () => {
      const blob = await (await capsules.download(capsuleId, e.path)).blob();
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = e.name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    });
  const onUpload = (ev: Event) => {
    const files = [...((ev.target as HTMLInputElement).files ?? [])];
    void act.run('upload', async () => {
      for (const f of files) await capsules.upload(capsuleId, joinPath(dir, f.name), f);
      if (upload.current) upload.current.value = '';
      await list.refresh();
    });
  };
  const entries = list.data ?? [];
  return (
    <div class="files">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          go(pathText.trim() || '/');
        }}
      >
        <label class="grow">
          Folder
          <input
            value={pathText}
            onInput={(e) => setPathText((e.target as HTMLInputElement).value)}
            spellcheck={false}
          />
        </label>
        <button type="submit">Go</button>
        <button type="button" disabled={dir === '/'} onClick={() => go(parentPath(dir))}>
          Up
        </button>
        <label class="button">
          Upload files
          <input ref={upload} type="file" multiple class="sr-only" onChange={onUpload} aria-label="Upload files" />
        </label>
      </form>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const name = newDir.trim();
          if (!name) return;
          void act.run('mkdir', async () => {
            await capsules.mkdir(capsuleId, name.startsWith('/') ? name : joinPath(dir, name));
            setNewDir('');
            await list.refresh();
          });
        }}
      >
        <label class="grow">
          New folder
          <input
            value={newDir}
            placeholder="name or absolute path"
            onInput={(e) => setNewDir((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit">Make folder</button>
      </form>
      {act.busy && (
        <p class="muted" role="status">
          {act.busy === 'upload' ? 'Uploading…' : 'Working…'}
        </p>
      )}
      <ErrorNote error={act.error} />
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      {list.data && entries.length === 0 ? (
        <Empty>{dir} is empty. Upload files or make a folder.</Empty>
      ) : (
        <table>
          <caption class="sr-only">Files in {dir}</caption>
          <TableHead columns={['Name', 'Size', 'Owner', 'Modified']} actions />
          <tbody>
            {entries.map((e) => (
              <tr key={e.path}>
                <th scope="row">
                  {e.type === 'dir' ? (
                    <button type="button" class="link" onClick={() => go(e.path)}>
                      📁 {e.name}/
                    </button>
                  ) : (
                    <button type="button" class="link" onClick={() => void open(e)}>
                      {e.name}
                      {e.symlink_target ? ` → ${e.symlink_target}` : ''}
                    </button>
                  )}
                </th>
                <td>{e.type === 'dir' ? '—' : bytes(e.size)}</td>
                <td>{e.owner}</td>
                <td>{e.modified_at ? new Date(e.modified_at).toLocaleString() : '—'}</td>
                <td>
                  <div class="row-actions">
                    {e.type !== 'dir' && (
                      <button type="button" aria-label={`Download ${e.name}`} onClick={() => void download(e)}>
                        Download
                      </button>
                    )}
                    <button type="button" class="danger" aria-label={`Delete ${e.name}`} onClick={() => setToDelete(e)}>
                      Delete
                    </button>
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {preview && (
        <section class="preview" aria-label={`Contents of ${preview.path}`}>
          <div class="page-head">
            <h3>{preview.path}</h3>
            <button type="button" onClick={() => setPreview(null)}>
              Close
            </button>
          </div>
          <pre>{preview.text}</pre>
        </section>
      )}
      <Confirm
        open={toDelete !== null}
        title="Delete?"
        body={
          <>
            <code>{toDelete?.path}</code>
            {toDelete?.type === 'dir' ? ' and everything inside it' : ''} will be deleted.
          </>
        }
        confirmLabel="Delete"
        onClose={() => setToDelete(null)}
        onConfirm={() => {
          const e = toDelete;
          if (e)
            void act.run('delete', async () => {
              await capsules.remove(capsuleId, e.path);
              await list.refresh();
            });
        }}
      />
    </div>
  );
}
