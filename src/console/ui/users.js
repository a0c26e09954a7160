// Users and their access keys, through the admin API (as the session's key:
// the admin listener decides, per operation, whether it may).
import { useEffect, useState } from 'preact/hooks';
import { admin } from './api.js';
import { ErrorBox, formatTime, html } from './html.js';

const POLICIES = ['readonly', 'readwrite', 'writeonly', 'consoleAdmin'];

function NewSecret({ created, onDismiss }) {
  return html`<div class="card" data-testid="new-secret">
    <p><b>Copy the secret now:</b> it is shown this once and never again.</p>
    <p>Access key <code data-testid="new-access-key">${created.accessKeyId}</code></p>
    <p class="secret" data-testid="new-secret-key">${created.secretAccessKey}</p>
    <button onClick=${onDismiss}>I have copied it</button>
  </div>`;
}

export function UsersPage() {
  const [users, setUsers] = useState([]);
  const [keys, setKeys] = useState([]);
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    Promise.all([admin('ListUsers'), admin('ListKeys')]).then(([usersAnswer, keysAnswer]) => {
      setUsers(usersAnswer.users);
      setKeys(keysAnswer.keys);
      setError(null);
    }, setError);
  }, [version]);
  async function act(action) {
    setError(null);
    try {
      const answer = await action();
      setVersion((n) => n + 1);
      return answer;
    } catch (failure) {
      setError(failure);
      return undefined;
    }
  }
  async function createUser(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const answer = await act(() => admin('CreateUser', { name: form.userName.value.trim(), policy: form.policy.value || null }));
    if (answer) {
      form.reset();
      setCreated(answer);
    }
  }
  async function createKey(user) {
    const answer = await act(() => admin('CreateKey', user === 'root' ? {} : { user }));
    if (answer) setCreated(answer);
  }
  const owners = ['root', ...users.map((user) => user.name)];
  return html`<h1>Users and keys</h1>
    <${ErrorBox} error=${error} />
    ${created ? html`<${NewSecret} created=${created} onDismiss=${() => setCreated(null)} />` : null}
    <form class="row card" onSubmit=${createUser}>
      <input name="userName" placeholder="user name" required aria-label="New user name" />
      <label>Policy <select name="policy" aria-label="Policy">${POLICIES.map((name) => html`<option value=${name}>${name}</option>`)}<option value="">none</option></select></label>
      <button class="primary" type="submit">Create user</button>
    </form>
    <table data-testid="users">
      <thead><tr><th>User</th><th>Policy</th><th>Keys</th><th></th></tr></thead>
      <tbody>${owners.map((owner) => {
        const user = users.find((one) => one.name === owner);
        return html`<tr key=${owner} data-user=${owner}>
          <td><b>${owner}</b>${user ? html`<div class="note">created ${formatTime(user.createdMs)}</div>` : null}</td>
          <td>${user ? html`<code>${user.policy ?? 'none'}</code>` : 'all'}</td>
          <td>${keys.filter((key) => key.owner === owner).map((key) => html`<div class="row" key=${key.accessKeyId}>
            <code>${key.accessKeyId}</code> ${key.enabled ? 'enabled' : html`<b>disabled</b>`}
            <button onClick=${() => act(() => admin('UpdateKey', { accessKeyId: key.accessKeyId, enabled: !key.enabled }))}>${key.enabled ? 'Disable' : 'Enable'}</button>
            <button class="danger" onClick=${() => act(() => admin('DeleteKey', { accessKeyId: key.accessKeyId }))}>Delete key</button>
          </div>`)}</td>
          <td class="row">
            <button onClick=${() => createKey(owner)}>New key</button>
            ${user ? html`<button class="danger" onClick=${() => act(() => admin('DeleteUser', { name: owner }))}>Delete user</button>` : null}
          </td>
        </tr>`;
      })}</tbody>
    </table>`;
}
