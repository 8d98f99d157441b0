// A terminal in the capsule: xterm.js over the PTY WebSocket. It fits the window, and when the
// connection drops it reconnects with the same tag, re-attaching to the same shell.

import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'preact/hooks';
import '@xterm/xterm/css/xterm.css';
import { wsUrl } from '../api.js';

const tagKey = (id: string) => `wrenn.pty.${id}`;
const newTag = () => `dash-${Math.random().toString(36).slice(2, 10)}`;

export function TerminalView({ capsuleId }: { capsuleId: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting');
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    let tag = sessionStorage.getItem(tagKey(capsuleId)) ?? newTag();
    sessionStorage.setItem(tagKey(capsuleId), tag);
    const term = new Terminal({
      cursorBlink: true,
      fontSize: 14,
      scrollback: 5000,
      screenReaderMode: false,
      theme: { background: '#0f1720', foreground: '#e6edf3' },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    // The terminal takes Tab and Escape for the shell; F6 leaves it for the rest of the page.
    term.attachCustomKeyEventHandler((e) => {
      if (e.type === 'keydown' && e.key === 'F6') {
        document.getElementById('tab-Terminal')?.focus();
        return false;
      }
      return true;
    });
    fit.fit();
    let ws: WebSocket | undefined;
    let closed = false;
    let exited = false;
    let retry = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const enc = new TextEncoder();
    const sendResize = () => {
      if (ws?.readyState === WebSocket.OPEN)
        ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    };
    const connect = () => {
      setStatus(retry === 0 ? 'connecting' : 'reconnecting');
      const sock = new WebSocket(
        wsUrl(`/v1/capsules/${encodeURIComponent(capsuleId)}/pty`, { cols: term.cols, rows: term.rows, tag }),
      );
      sock.binaryType = 'arraybuffer';
      ws = sock;
      sock.onmessage = (ev) => {
        if (typeof ev.data !== 'string') {
          term.write(new Uint8Array(ev.data as ArrayBuffer));
          return;
        }
        const m = JSON.parse(ev.data) as { type: string; exit_code?: number; error?: { message: string } };
        if (m.type === 'start') {
          retry = 0;
          setStatus('connected');
          sendResize();
        } else if (m.type === 'exit') {
          exited = true;
          term.write(`\r\n[the shell exited with code ${m.exit_code ?? '?'}]\r\n`);
          setStatus('exited');
        } else if (m.type === 'error') {
          term.write(`\r\n[${m.error?.message ?? 'error'}]\r\n`);
        }
      };
      sock.onclose = () => {
        if (closed || ws !== sock) return;
        if (exited) {
          // The shell is gone: the next terminal is a new one.
          tag = newTag();
          sessionStorage.setItem(tagKey(capsuleId), tag);
          return;
        }
        retry++;
        setStatus(`disconnected; reconnecting (attempt ${retry})`);
        timer = setTimeout(connect, Math.min(10_000, 500 * 2 ** Math.min(retry, 5)));
      };
    };
    const input = term.onData((d) => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    const bin = term.onBinary((d) => {
      if (ws?.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, (ch) => ch.charCodeAt(0)));
    });
    const resized = term.onResize(() => sendResize());
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        // hidden: nothing to fit
      }
    });
    ro.observe(el);
    connect();
    term.focus();
    return () => {
      closed = true;
      clearTimeout(timer);
      ro.disconnect();
      input.dispose();
      bin.dispose();
      resized.dispose();
      ws?.close();
      term.dispose();
    };
  }, [capsuleId, generation]);
  return (
    <div class="terminal-panel">
      <div class="terminal-bar">
        <span role="status" aria-live="polite">
          Terminal: {status}
        </span>
        {status === 'exited' && (
          <button type="button" onClick={() => setGeneration((g) => g + 1)}>
            New terminal
          </button>
        )}
      </div>
      <div class="terminal" ref={box} data-testid="terminal" />
      <p class="hint">
        Keys go to the shell while the terminal has focus (Tab included); press F6 to move focus back to the page.
      </p>
    </div>
  );
}
