// Entry: the login gate, the navigation and the pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { clearKey, getKey, onUnauthorized } from './api.js';
import { CapsulePage } from './pages/capsule.js';
import { CapsulesPage } from './pages/capsules.js';
import { CatalogPage } from './pages/catalog.js';
import { HostsPage } from './pages/hosts.js';
import { KeysPage } from './pages/keys.js';
import { LoginPage } from './pages/login.js';
import { navigate, usePath } from './router.js';
import { Link } from './ui.js';

const NAV = [
  { href: '/', label: 'Capsules' },
  { href: '/catalog', label: 'Templates & snapshots' },
  { href: '/hosts', label: 'Hosts' },
  { href: '/keys', label: 'API keys' },
];

function Page({ path }: { path: string }) {
  const m = /^\/capsules\/([^/]+)$/.exec(path);
  if (m) return <CapsulePage id={decodeURIComponent(m[1]!)} />;
  if (path === '/catalog') return <CatalogPage />;
  if (path === '/hosts') return <HostsPage />;
  if (path === '/keys') return <KeysPage />;
  if (path === '/' || path === '/capsules') return <CapsulesPage />;
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        There is no page at <code>{path}</code>. <Link href="/">Go to the capsules</Link>.
      </p>
    </section>
  );
}

function App() {
  const path = usePath();
  const [key, setKeyState] = useState(getKey());
  useEffect(
    () =>
      onUnauthorized(() => {
        clearKey();
        setKeyState('');
      }),
    [],
  );
  useEffect(() => {
    const title = NAV.find((n) => n.href === path)?.label ?? (path.startsWith('/capsules/') ? path.slice(10) : 'Wrenn');
    document.title = `${title} · Wrenn`;
  }, [path]);
  if (!key) return <LoginPage onLogin={() => setKeyState(getKey())} />;
  const current = (href: string) => (href === '/' ? path === '/' || path.startsWith('/capsules') : path === href);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Wrenn</span>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <Link key={n.href} href={n.href} class="nav" aria-current={current(n.href) ? 'page' : undefined}>
              {n.label}
            </Link>
          ))}
        </nav>
        <button
          type="button"
          class="ghost"
          onClick={() => {
            clearKey();
            setKeyState('');
            navigate('/');
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <Page path={path} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
