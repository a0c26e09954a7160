// The console's shell: the login, the navigation (location.hash) and the pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { currentSession, login, logout, whenSessionLost } from './api.js';
import { BucketsPage } from './buckets.js';
import { DashboardPage } from './dashboard.js';
import { ErrorBox, html, lazyComponent } from './html.js';
import { ObjectsPage } from './objects.js';
import { UsersPage } from './users.js';

const BackendsPage = lazyComponent(() => import('./backends.js').then((module) => module.BackendsPage));
const QueuesPage = lazyComponent(() => import('./queues.js').then((module) => module.QueuesPage));
const AuditPage = lazyComponent(() => import('./audit.js').then((module) => module.AuditPage));

function LoginPage({ onLogin }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = event.currentTarget;
    setBusy(true);
    setError(null);
    try {
      const session = await login(form.accessKeyId.value.trim(), form.secretAccessKey.value);
      // The secret leaves the page's memory with the form.
      form.reset();
      onLogin(session);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  }
  return html`<form class="login card" onSubmit=${submit} autocomplete="off">
    <h1>Talus console</h1>
    <label for="accessKeyId">Access key</label>
    <input id="accessKeyId" name="accessKeyId" required autocomplete="username" />
    <label for="secretAccessKey">Secret key</label>
    <input id="secretAccessKey" name="secretAccessKey" type="password" required autocomplete="current-password" />
    <${ErrorBox} error=${error} />
    <div class="row"><button class="primary" type="submit" disabled=${busy}>Log in</button></div>
    <p class="note">The secret goes to the server once; the browser keeps only a session cookie it cannot read.</p>
  </form>`;
}

/** '#/b/<bucket>/<prefix>' → { page: 'objects', bucket, prefix } */
function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/');
  if (parts[0] === 'b' && parts[1]) return { page: 'objects', bucket: decodeURIComponent(parts[1]), prefix: decodeURIComponent(parts.slice(2).join('/')) };
  if (parts[0] === 'users') return { page: 'users' };
  if (parts[0] === 'dashboard') return { page: 'dashboard' };
  if (parts[0] === 'backends') return { page: 'backends' };
  if (parts[0] === 'queues') return { page: 'queues' };
  if (parts[0] === 'audit') return { page: 'audit' };
  return { page: 'buckets' };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

function App() {
  const [session, setSession] = useState(undefined);
  const route = useRoute();
  useEffect(() => {
    whenSessionLost(() => setSession(null));
    currentSession().then(setSession, () => setSession(null));
  }, []);
  if (session === undefined) return html`<p class="note">Loading…</p>`;
  if (session === null) return html`<${LoginPage} onLogin=${setSession} />`;
  async function signOut() {
    await logout();
    setSession(null);
  }
  const link = (href, page, label) => html`<a href=${href} class=${route.page === page ? 'active' : ''}>${label}</a>`;
  let page;
  if (route.page === 'objects') page = html`<${ObjectsPage} bucket=${route.bucket} prefix=${route.prefix} />`;
  else if (route.page === 'users') page = html`<${UsersPage} />`;
  else if (route.page === 'dashboard') page = html`<${DashboardPage} />`;
  else if (route.page === 'backends') page = html`<${BackendsPage} />`;
  else if (route.page === 'queues') page = html`<${QueuesPage} />`;
  else if (route.page === 'audit') page = html`<${AuditPage} />`;
  else page = html`<${BucketsPage} />`;
  return html`<header>
      <span class="brand">Talus</span>
      <nav>${link('#/', 'buckets', 'Buckets')}${link('#/users', 'users', 'Users')}${link('#/dashboard', 'dashboard', 'Dashboard')}${link('#/backends', 'backends', 'Backends')}${link('#/queues', 'queues', 'Queues')}${link('#/audit', 'audit', 'Audit log')}</nav>
      <span class="who">Signed in as <b data-testid="principal">${session.principal}</b> (${session.accessKeyId})</span>
      <button onClick=${signOut}>Log out</button>
    </header>
    <main>${page}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
