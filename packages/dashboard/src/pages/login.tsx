// The login screen: an API key, checked against the API before it is kept in localStorage.
import { useState } from 'preact/hooks';
import { setKey } from '../api.js';

export function LoginPage({ onLogin }: { onLogin: () => void }) {
  const [key, setKeyText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!k) {
      setError('Enter an API key (it starts with wrn_, or e2b_ in its form for the e2b SDKs).');
      return;
    }
    setBusy(true);
    setError('');
    try {
      const res = await fetch('/v1/hosts', { headers: { 'x-api-key': k } });
      if (res.status === 401) throw new Error('That key was not accepted: it is unknown, revoked or mistyped.');
      if (!res.ok) throw new Error(`The control plane answered ${res.status}; try again shortly.`);
      setKey(k);
      onLogin();
    } catch (err) {
      setError(
        (err as Error).message.startsWith('Failed to fetch')
          ? 'The control plane did not answer. Is it running?'
          : (err as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form onSubmit={submit} aria-describedby="login-help">
        <h1>Sign in to Wrenn</h1>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="current-password"
          placeholder="wrn_…"
          value={key}
          onInput={(e) => setKeyText((e.target as HTMLInputElement).value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'login-error' : undefined}
          required
        />
        <p id="login-help" class="hint">
          <code>wrenn up</code> prints the admin key and saves it in its data directory; more keys come from{' '}
          <code>wrenn keys create</code> or the API keys page. The key stays in this browser only.
        </p>
        {error && (
          <p id="login-error" class="notice error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
