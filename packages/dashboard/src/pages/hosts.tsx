// Sandbox hosts: health (status and heartbeat) and capacity (allocated vs. total).
import type { Host } from '../api.js';
import { hosts } from '../api.js';
import { ago } from '../format.js';
import { Empty, ErrorNote, TableHead, usePoll } from '../ui.js';

function Meter({ label, used, total, unit }: { label: string; used: number; total: number; unit: string }) {
  const ratio = total > 0 ? used / total : 0;
  return (
    <div class="meter-cell">
      <meter
        min={0}
        max={total || 1}
        value={used}
        high={total * 0.85}
        optimum={0}
        aria-label={`${label}: ${used} of ${total} ${unit} allocated`}
      />
      <span>
        {used} / {total} {unit} ({Math.round(ratio * 100)}%)
      </span>
    </div>
  );
}

const health = (h: Host) => {
  if (h.status !== 'online') return h.status;
  if (!h.last_heartbeat_at) return 'online (no heartbeat yet)';
  const s = (Date.now() - Date.parse(h.last_heartbeat_at)) / 1000;
  return s > 60 ? `online, heartbeat late` : 'healthy';
};

export function HostsPage() {
  const list = usePoll(() => hosts.list(), [], 5000);
  return (
    <section aria-labelledby="hosts-title">
      <h1 id="hosts-title">Hosts</h1>
      <ErrorNote error={list.error} onRetry={() => void list.refresh()} />
      {list.data && list.data.length === 0 ? (
        <Empty>
          No host agent has registered. Start one with <code>wrenn agent</code> (or use <code>wrenn up</code>).
        </Empty>
      ) : (
        <table>
          <caption class="sr-only">Hosts</caption>
          <TableHead
            columns={[
              'Host',
              'Health',
              'Runtimes',
              'Capsules',
              'vCPUs allocated',
              'Memory allocated',
              'Last heartbeat',
            ]}
          />
          <tbody>
            {(list.data ?? []).map((h) => (
              <tr key={h.id}>
                <th scope="row" class="mono">
                  {h.id}
                </th>
                <td>
                  <span class={`badge h-${h.status}`}>{health(h)}</span>
                </td>
                <td>{h.runtimes.join(', ')}</td>
                <td>{h.capsules}</td>
                <td>
                  <Meter label="vCPUs" used={h.allocated_vcpus} total={h.cpu_count} unit="vCPU" />
                </td>
                <td>
                  <Meter label="Memory" used={h.allocated_memory_mb} total={h.memory_mb} unit="MiB" />
                </td>
                <td>{h.last_heartbeat_at ? `${ago(h.last_heartbeat_at)} ago` : '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
